-- Security for Supabase (issue #9): app roles reach the queue only through what is granted.
--
-- On Supabase, `anon` and `authenticated` are whoever holds the project's public API key: what
-- is granted to them is granted to every browser. This migration:
--
--   * says who is calling a pgjobs function (pgjobs.calling_role, pgjobs.caller_user_id): the
--     role the request runs as, which SECURITY DEFINER cannot hide, not current_user (inside a
--     SECURITY DEFINER function that is always its owner);
--   * records grants to enqueue, one row per (role, task) in pgjobs.enqueue_grants, made with
--     pgjobs.grant_enqueue: which queues, how large a payload, how far ahead, how many per minute
--     per caller. pgjobs.authorize_enqueue checks them, at the top of pgjobs.enqueue; the owner,
--     superusers and roles that bypass row-level security (Supabase's service_role) are
--     trusted and pass unchecked, as backends do;
--   * scopes job keys: a granted caller's keys are prefixed with who it is, so it can replace only
--     its own jobs; and on graphile-worker's jobs table a key belongs to its job's task, so no
--     door (add_job, add_jobs, quickAddJob, the crontab, pgjobs.enqueue, enqueue()) can replace,
--     detach or dedupe into another task's job with it;
--   * caps payloads at graphile-worker's own doors too (add_job, quickAddJob): over 64 KiB, a
--     payload must fit its task's cap;
--   * revokes EXECUTE from PUBLIC on graphile-worker's functions (only schema usage stood in the
--     way) and on everything in pgjobs, this file's functions included.
--
-- Triggers here never fail the engine's own statements: graphile-worker's workers never insert
-- keyed or oversized jobs of their own nor change a job's task; only an app's add_job/add_jobs
-- (or its crontab's jobKey) can be refused, and then the app's statement fails, saying why.

-- ── Who is calling ───────────────────────────────────────────────────────────────────────
-- The role the request runs as: the role set by SET ROLE (PostgREST sets anon, authenticated or
-- service_role for each request), else the login role. Neither changes inside a SECURITY
-- DEFINER function, and a session can SET ROLE only to roles it is a member of, so this cannot
-- be forged into a role the session could not act as anyway. A SECURITY DEFINER wrapper does not
-- change who the caller is: the limits follow the request, whichever function it went through.
-- (PL/pgSQL, not SQL, here and below: these run in every enqueue and credits call, and PL/pgSQL
-- keeps their plans for the session where a SQL function with a SET clause is planned per call.)
create function pgjobs.calling_role() returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return case when current_setting('role') <> 'none' then current_setting('role') else session_user::text end;
end;
$$;

-- The app user behind the request: the JWT's `sub`, as Supabase's auth.uid() reads it (as text:
-- it is not a uuid everywhere). Null when the request carries no user (anon, a backend).
create function pgjobs.caller_user_id() returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', ''));
end;
$$;

-- Whether the caller is a backend, which no grant limits: a superuser, a role that bypasses
-- row-level security (Supabase's service_role and postgres), or one with the privileges of the
-- role that owns pgjobs (the role that migrates it).
create function pgjobs.caller_is_trusted() returns boolean
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  caller text := pgjobs.calling_role();
begin
  return coalesce((select r.rolsuper or r.rolbypassrls or pg_has_role(r.oid, n.nspowner, 'USAGE')
                     from pg_roles r cross join pg_namespace n
                    where r.rolname = caller and n.nspname = 'pgjobs'), false);
end;
$$;

-- Who the caller is, for rate limits and job keys: `uid=<sub>` for an app user, else
-- `role=<role>` (every anonymous request shares one). `/` and `%` are escaped, so a key made
-- from it (pgjobs.caller_job_key) splits one way only.
create function pgjobs.caller_identity() returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return coalesce('uid=' || replace(replace(pgjobs.caller_user_id(), '%', '%25'), '/', '%2F'),
                  'role=' || replace(replace(pgjobs.calling_role(), '%', '%25'), '/', '%2F'));
end;
$$;

-- The job key as stored: unchanged for a backend; `<caller identity>/<key>` for a granted caller,
-- whose key then names only its own jobs: it cannot replace another user's job, and cannot take
-- a key the app uses (the app's own keys never start with `uid=` or `role=`).
create function pgjobs.caller_job_key(job_key text) returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if job_key is null or pgjobs.caller_is_trusted() then
    return job_key;
  end if;
  return pgjobs.caller_identity() || '/' || job_key;
end;
$$;

-- ── Grants to enqueue ────────────────────────────────────────────────────────────────────
create table pgjobs.enqueue_grants (
  role text not null,
  task text not null,
  -- Queues the caller may name; it may always leave the queue to the task's own.
  queues text[] not null default '{}',
  max_payload_bytes integer not null default 4096 check (max_payload_bytes between 2 and 1048576),
  -- How far ahead run_at may be (a granted caller may never set it in the past).
  max_delay interval not null default interval '1 day' check (max_delay >= interval '0'),
  -- Jobs per minute per caller (per app user, or per role for requests without one).
  per_minute integer not null default 60 check (per_minute between 1 and 1000000),
  -- Optionally, jobs per minute for all the role's callers together.
  per_minute_all_callers integer check (per_minute_all_callers between 1 and 1000000),
  -- The function pgjobs.grant_enqueue made for this grant (rpc_function), if asked to.
  rpc_function text,
  granted_at timestamptz not null default now(),
  primary key (role, task)
);

comment on table pgjobs.enqueue_grants is 'Which role may enqueue which task, within which limits (pgjobs.grant_enqueue; SECURITY.md).';

-- Jobs charged to a caller in its current minute. One row per (role, task, caller), updated in
-- place (a HOT update within a minute): the row lock makes the count exact under concurrency, at
-- the cost of one caller's enqueues taking turns until each commits. Rows of callers silent for
-- 10 minutes are deleted, a few at a time, whenever some caller starts a new minute.
create table pgjobs.enqueue_counters (
  role text not null,
  task text not null,
  caller text not null,
  window_start timestamptz not null,
  jobs integer not null,
  primary key (role, task, caller)
);
create index enqueue_counters_window on pgjobs.enqueue_counters (window_start);

comment on table pgjobs.enqueue_counters is 'Jobs enqueued per granted caller in its current minute (pgjobs.authorize_enqueue).';

-- Charges n jobs to a caller's current minute (which starts at its first job after the last
-- minute ended) and returns the jobs in it, these included, and when it started.
create function pgjobs.charge_enqueue(p_role text, p_task text, p_caller text, n integer,
                                      out jobs integer, out window_start timestamptz)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  insert into pgjobs.enqueue_counters as c (role, task, caller, window_start, jobs)
  values (p_role, p_task, p_caller, now(), n)
  on conflict (role, task, caller) do update
     set window_start = case when c.window_start > now() - interval '1 minute' then c.window_start else now() end,
         jobs = case when c.window_start > now() - interval '1 minute' then c.jobs + n else n end
  returning c.jobs, c.window_start into charge_enqueue.jobs, charge_enqueue.window_start;
  if charge_enqueue.jobs = n then
    -- A new minute: tidy up after callers gone quiet (bounded work, never waiting on a lock).
    delete from pgjobs.enqueue_counters c
     where c.ctid = any(array(select s.ctid from pgjobs.enqueue_counters s
                               where s.window_start < now() - interval '10 minutes'
                               limit 10 for update skip locked));
  end if;
end;
$$;

-- The one place grants are checked. Raises, naming the limit, unless the caller is trusted or
-- its role's grant for `task` allows this: the queue (null: the task's own), the payload size, a
-- run_at not in the past nor past max_delay, no priority ahead of other jobs or attempts of its
-- own choosing, a key of at most 256 characters, and n_jobs more jobs this minute (per caller,
-- and per role if the grant says). n_jobs => 0 checks without charging: a batch checks each job
-- so, then charges each task's count once.
create function pgjobs.authorize_enqueue(
  task text,
  queue text,
  payload_bytes integer,
  run_at timestamptz,
  job_key text,
  n_jobs integer default 1,
  priority integer default null,
  max_attempts integer default null
) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  caller_role text;
  caller text;
  g pgjobs.enqueue_grants;
  charged record;
begin
  if pgjobs.caller_is_trusted() then
    return;
  end if;
  caller_role := pgjobs.calling_role();
  select * into g from pgjobs.enqueue_grants eg where eg.role = caller_role and eg.task = authorize_enqueue.task;
  if not found then
    raise exception 'pgjobs.enqueue: role % may not enqueue task "%": it has no grant for it', caller_role, task
      using errcode = 'insufficient_privilege',
            hint = format('A database owner allows it with select pgjobs.grant_enqueue(%L, %L); see SECURITY.md.',
                          caller_role, task);
  end if;
  if payload_bytes > g.max_payload_bytes then
    raise exception 'pgjobs.enqueue: the payload for "%" is % bytes; role %''s grant allows at most % bytes (max_payload_bytes)',
      task, payload_bytes, caller_role, g.max_payload_bytes
      using errcode = 'program_limit_exceeded', hint = 'Store large data in a table and pass its id in the payload.';
  end if;
  if queue is not null and not queue = any(g.queues) then
    raise exception 'pgjobs.enqueue: queue "%" is not granted to role % for "%" (queues: %)',
      queue, caller_role, task, coalesce(nullif(array_to_string(g.queues, ', '), ''), 'none; leave queue null')
      using errcode = 'insufficient_privilege';
  end if;
  if run_at < now() then
    raise exception 'pgjobs.enqueue: run_at % is in the past; role % may not schedule a job ahead of the queue', run_at, caller_role
      using errcode = 'invalid_parameter_value', hint = 'Leave run_at null to run the job now.';
  end if;
  if run_at > now() + g.max_delay then
    raise exception 'pgjobs.enqueue: run_at % is more than % ahead; role %''s grant for "%" allows up to % (max_delay)',
      run_at, g.max_delay, caller_role, task, g.max_delay
      using errcode = 'invalid_parameter_value';
  end if;
  if priority < 0 then
    raise exception 'pgjobs.enqueue: priority % would run ahead of other jobs; role % may give 0 or more', priority, caller_role
      using errcode = 'insufficient_privilege';
  end if;
  if max_attempts is not null then
    raise exception 'pgjobs.enqueue: role % may not choose max_attempts; jobs of "%" get the task''s own', caller_role, task
      using errcode = 'insufficient_privilege';
  end if;
  if length(job_key) > 256 then
    raise exception 'pgjobs.enqueue: job_key is % characters; role % may use at most 256', length(job_key), caller_role
      using errcode = 'program_limit_exceeded';
  end if;
  if n_jobs < 0 then
    raise exception 'pgjobs.authorize_enqueue: n_jobs must be 0 or more, got %', n_jobs using errcode = 'invalid_parameter_value';
  end if;
  if n_jobs > 0 then
    caller := pgjobs.caller_identity();
    select * into charged from pgjobs.charge_enqueue(caller_role, task, caller, n_jobs);
    if charged.jobs > g.per_minute then
      -- Raising rolls the charge back with everything else: a refused call leaves nothing behind.
      raise exception 'pgjobs.enqueue: rate limit: % may enqueue % jobs of "%" per minute (per_minute of role %''s grant); % already this minute',
        caller, g.per_minute, task, caller_role, charged.jobs - n_jobs
        using errcode = 'PT429', -- PostgREST answers HTTP 429 to SQLSTATE PT429
              hint = format('Try again after %s.', to_char((charged.window_start + interval '1 minute') at time zone 'UTC',
                                                           'YYYY-MM-DD HH24:MI:SS"Z"'));
    end if;
    if g.per_minute_all_callers is not null then
      select * into charged from pgjobs.charge_enqueue(caller_role, task, '*', n_jobs);
      if charged.jobs > g.per_minute_all_callers then
        raise exception 'pgjobs.enqueue: rate limit: role % may enqueue % jobs of "%" per minute for all its callers together (per_minute_all_callers); % already this minute',
          caller_role, g.per_minute_all_callers, task, charged.jobs - n_jobs
          using errcode = 'PT429',
                hint = format('Try again after %s.', to_char((charged.window_start + interval '1 minute') at time zone 'UTC',
                                                             'YYYY-MM-DD HH24:MI:SS"Z"'));
      end if;
    end if;
  end if;
end;
$$;

comment on function pgjobs.authorize_enqueue is 'Checks the caller''s grant to enqueue (raises naming the limit); a no-op for trusted callers.';

-- Lets `role` enqueue `task` within limits (see pgjobs.enqueue_grants), and gives it EXECUTE on
-- pgjobs.enqueue (with USAGE on schema pgjobs) and nothing else. Called again, it replaces the
-- limits. With rpc_function ('schema.name'), it also makes that function for PostgREST to expose
-- (`payload, run_at, job_key, queue` → job id), executable by `role` alone: Supabase's default
-- privileges would otherwise grant a new function in public to anon, authenticated and
-- service_role. Runs with its caller's rights (a database owner's): it is granted to no one.
create function pgjobs.grant_enqueue(
  role text,
  task text,
  queues text[] default '{}',
  max_payload_bytes integer default 4096,
  max_delay interval default interval '1 day',
  per_minute integer default 60,
  per_minute_all_callers integer default null,
  rpc_function text default null
) returns pgjobs.enqueue_grants
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  grantee oid;
  g pgjobs.enqueue_grants;
  previous text;
  parts text[];
  fn regprocedure;
  holder oid;
begin
  select r.oid into grantee from pg_roles r where r.rolname = grant_enqueue.role;
  if grantee is null then
    raise exception 'pgjobs.grant_enqueue: role "%" does not exist', role using errcode = 'undefined_object';
  end if;
  if task = 'pgjobs__prune_history' then
    raise exception 'pgjobs.grant_enqueue: pgjobs__prune_history is maintenance: whoever may enqueue it may empty the job history'
      using errcode = 'insufficient_privilege', hint = 'Run it from the crontab; grant app roles only tasks that check what they are asked to do.';
  end if;
  if not exists (select 1 from pgjobs.task_registry r where r.task = grant_enqueue.task) then
    raise notice 'pgjobs.grant_enqueue: task "%" is not registered (yet): enqueueing it is refused until `pgjobs migrate` or a worker registers it', task;
  end if;
  if (select r.rolsuper or r.rolbypassrls from pg_roles r where r.oid = grantee) then
    raise notice 'pgjobs.grant_enqueue: role % is trusted (superuser or BYPASSRLS): grants do not limit it', role;
  end if;
  if rpc_function is not null then
    parts := parse_ident(rpc_function);
    if cardinality(parts) <> 2 then
      raise exception 'pgjobs.grant_enqueue: rpc_function must be schema-qualified, like public.enqueue_welcome_email; got %', rpc_function
        using errcode = 'invalid_parameter_value';
    end if;
  end if;
  select eg.rpc_function into previous from pgjobs.enqueue_grants eg
   where eg.role = grant_enqueue.role and eg.task = grant_enqueue.task;

  insert into pgjobs.enqueue_grants as eg (role, task, queues, max_payload_bytes, max_delay, per_minute,
                                           per_minute_all_callers, rpc_function)
  values (role, task, coalesce(queues, '{}'), max_payload_bytes, max_delay, per_minute, per_minute_all_callers, null)
  on conflict on constraint enqueue_grants_pkey do update
     set queues = excluded.queues, max_payload_bytes = excluded.max_payload_bytes, max_delay = excluded.max_delay,
         per_minute = excluded.per_minute, per_minute_all_callers = excluded.per_minute_all_callers,
         granted_at = now()
  returning * into g;

  execute format('grant usage on schema pgjobs to %I', role);
  execute format('grant execute on function pgjobs.enqueue(text, jsonb, timestamptz, text, text, integer, integer) to %I', role);

  if rpc_function is not null then
    fn := to_regprocedure(format('%I.%I(jsonb, timestamptz, text, text)', parts[1], parts[2]));
    if fn is not null and fn::text is distinct from previous then
      raise exception 'pgjobs.grant_enqueue: function % exists already and was not made by pgjobs for this grant; choose another name', fn
        using errcode = 'duplicate_function';
    end if;
    execute format(
      $f$create or replace function %I.%I(payload jsonb default '{}', run_at timestamptz default null,
                                          job_key text default null, queue text default null)
         returns bigint language sql security invoker set search_path = pg_catalog, pg_temp
         as %L$f$,
      parts[1], parts[2], format('select pgjobs.enqueue(%L, payload, run_at, job_key, queue)', task));
    fn := to_regprocedure(format('%I.%I(jsonb, timestamptz, text, text)', parts[1], parts[2]));
    -- Exactly `role` may call it: take back what defaults (PUBLIC, Supabase's) gave anyone else.
    for holder in
      select distinct a.grantee from pg_proc p cross join lateral aclexplode(p.proacl) a
       where p.oid = fn and a.grantee <> p.proowner
    loop
      if holder = 0 then
        execute format('revoke all on function %s from public', fn);
      else
        execute format('revoke all on function %s from %I', fn, (select r.rolname from pg_roles r where r.oid = holder));
      end if;
    end loop;
    execute format('revoke all on function %s from public', fn);
    execute format('grant execute on function %s to %I', fn, role);
    execute format('comment on function %s is %L', fn,
                   format('Made by pgjobs.grant_enqueue: lets %s enqueue %s, within its grant (pgjobs.enqueue_grants).', role, task));
    update pgjobs.enqueue_grants eg set rpc_function = fn::text
     where eg.role = grant_enqueue.role and eg.task = grant_enqueue.task
    returning * into g;
    if previous is distinct from fn::text and previous is not null then
      -- Granted again under another name: the function made last time goes.
      execute format('drop function if exists %s', previous);
    end if;
  elsif previous is not null then
    -- Granted again without it: the function made last time goes.
    execute format('drop function if exists %s', previous);
  end if;
  return g;
end;
$$;

comment on function pgjobs.grant_enqueue is 'Let a role enqueue one task, within limits; optionally make an RPC function for it (SECURITY.md).';

-- Takes a grant back (and the function made for it). A role left with no grant loses EXECUTE on
-- pgjobs.enqueue and USAGE on schema pgjobs.
create function pgjobs.revoke_enqueue(role text, task text) returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  g pgjobs.enqueue_grants;
begin
  delete from pgjobs.enqueue_grants eg where eg.role = revoke_enqueue.role and eg.task = revoke_enqueue.task
  returning * into g;
  if not found then
    return false;
  end if;
  if g.rpc_function is not null then
    execute format('drop function if exists %s', g.rpc_function);
  end if;
  delete from pgjobs.enqueue_counters c where c.role = revoke_enqueue.role and c.task = revoke_enqueue.task;
  if not exists (select 1 from pgjobs.enqueue_grants eg where eg.role = revoke_enqueue.role)
     and exists (select 1 from pg_roles r where r.rolname = revoke_enqueue.role) then
    execute format('revoke execute on function pgjobs.enqueue(text, jsonb, timestamptz, text, text, integer, integer) from %I', role);
    execute format('revoke usage on schema pgjobs from %I', role);
  end if;
  return true;
end;
$$;

comment on function pgjobs.revoke_enqueue is 'Take back a role''s grant to enqueue a task (and the RPC function made for it).';

-- ── pgjobs.enqueue: checks the caller's grant first ──────────────────────────────────────
-- 0004's function, with the grant check at the top and the job key scoped to a granted caller.
create or replace function pgjobs.enqueue(
  task text,
  payload jsonb default '{}'::jsonb,
  run_at timestamptz default null,
  job_key text default null,
  queue text default null,
  priority integer default null,
  max_attempts integer default null
) returns bigint
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  cap integer;
  task_max_attempts integer;
  task_queue text;
  size integer := octet_length(payload::text);
  job graphile_worker._private_jobs;
begin
  perform pgjobs.authorize_enqueue(enqueue.task, enqueue.queue, size, enqueue.run_at, enqueue.job_key, 1,
                                   enqueue.priority, enqueue.max_attempts);
  select r.max_payload_bytes, r.default_max_attempts, r.default_queue into cap, task_max_attempts, task_queue
    from pgjobs.task_registry r where r.task = enqueue.task;
  if cap is null then
    raise exception 'pgjobs.enqueue: unknown task "%"', enqueue.task
      using errcode = 'invalid_parameter_value',
            hint = 'Registered tasks: ' || coalesce((select string_agg(r.task, ', ' order by r.task) from pgjobs.task_registry r), 'none') || '.';
  end if;
  if payload is null or jsonb_typeof(payload) <> 'object' then
    raise exception 'pgjobs.enqueue: the payload for "%" must be a JSON object, got %', enqueue.task, coalesce(jsonb_typeof(payload), 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if size > cap then
    raise exception 'pgjobs.enqueue: payload for "%" is % bytes; the cap is % bytes', enqueue.task, size, cap
      using errcode = 'program_limit_exceeded',
            hint = 'Store large data in a table and pass its id in the payload.';
  end if;
  if pgjobs.nests_deeper_than(payload, 64) then
    raise exception 'pgjobs.enqueue: the payload for "%" is nested deeper than 64 levels', enqueue.task
      using errcode = 'program_limit_exceeded', hint = 'Flatten the payload.';
  end if;
  if run_at is not null and run_at > now() + interval '1 year' then
    raise exception 'pgjobs.enqueue: run_at % is more than a year ahead', run_at using errcode = 'invalid_parameter_value';
  end if;
  if max_attempts is not null and max_attempts not between 1 and 100 then
    raise exception 'pgjobs.enqueue: max_attempts must be between 1 and 100, got %', max_attempts using errcode = 'invalid_parameter_value';
  end if;
  if priority is not null and priority not between -1000 and 1000 then
    raise exception 'pgjobs.enqueue: priority must be between -1000 and 1000, got %', priority using errcode = 'invalid_parameter_value';
  end if;
  job := graphile_worker.add_job(
    identifier => enqueue.task, payload => enqueue.payload::json, queue_name => coalesce(enqueue.queue, task_queue),
    run_at => enqueue.run_at, max_attempts => coalesce(enqueue.max_attempts, task_max_attempts),
    job_key => pgjobs.caller_job_key(enqueue.job_key), priority => enqueue.priority
  );
  return job.id;
end;
$$;

comment on function pgjobs.enqueue is 'Enqueue a registered pgjobs task from SQL or a trigger; checks the caller''s grant, refuses unknown tasks and oversized payloads.';

-- ── Job keys belong to their task; payload caps at graphile-worker's doors ───────────────
-- graphile-worker's job keys are global: add_job with a key replaces the job holding it, whatever
-- its task, and for a job that is running or out of attempts it first detaches the key and
-- takes the job's remaining attempts away. These triggers refuse a key held (or just detached,
-- in this transaction) by a job of another task, in every mode (replace, preserve_run_at,
-- unsafe_dedupe). The one false refusal: remove_job(key) on a running job, then add_job of
-- another task with the same key, in one transaction.
create function pgjobs.guard_job_insert() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  holder_job bigint;
  holder_task text;
  detached jsonb;
  size integer;
  cap integer;
begin
  if new.key is not null then
    select j.id, t.identifier into holder_job, holder_task
      from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
     where j.key = new.key and j.task_id <> new.task_id;
    if holder_task is null then
      detached := nullif(current_setting('pgjobs.detached_job_keys', true), '')::jsonb;
      if detached ? new.key and (detached ->> new.key)::integer <> new.task_id then
        select t.identifier into holder_task from graphile_worker._private_tasks t where t.id = (detached ->> new.key)::integer;
      end if;
    end if;
    if holder_task is not null then
      raise exception 'job key "%" belongs to % of task "%"; a job key can only replace a job of its own task, not one of "%"',
        new.key, coalesce('job ' || holder_job, 'a running job'), holder_task,
        (select t.identifier from graphile_worker._private_tasks t where t.id = new.task_id)
        using errcode = 'unique_violation',
              hint = 'Give each task keys of its own (for example prefixed with the task''s name).';
    end if;
  end if;
  size := octet_length(new.payload::text);
  if size > 65536 then
    select r.max_payload_bytes into cap
      from graphile_worker._private_tasks t join pgjobs.task_registry r on r.task = t.identifier
     where t.id = new.task_id;
    if size > coalesce(cap, 65536) then
      raise exception 'the payload of a "%" job is % bytes, over the task''s cap of % bytes (maxPayloadBytes)',
        (select t.identifier from graphile_worker._private_tasks t where t.id = new.task_id), size, coalesce(cap, 65536)
        using errcode = 'program_limit_exceeded',
              hint = 'Store large data in a table and pass its id in the payload.';
    end if;
  end if;
  return new;
end;
$$;

create trigger pgjobs_guard_job_insert
  before insert on graphile_worker._private_jobs
  for each row
  when (new.key is not null or octet_length(new.payload::text) > 65536)
  execute function pgjobs.guard_job_insert();

-- A keyed job changes task (add_jobs replacing another task's job, when its insert raced a
-- commit past the check above): refused. A key detached (add_jobs before it inserts a job with
-- the key, or remove_job on a running job): remembered for the rest of the transaction, so the
-- insert that follows is checked against the task that held it.
create function pgjobs.guard_job_key_update() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if new.key is null then
    perform set_config('pgjobs.detached_job_keys',
                       (coalesce(nullif(current_setting('pgjobs.detached_job_keys', true), '')::jsonb, '{}'::jsonb)
                        || jsonb_build_object(old.key, old.task_id))::text,
                       true);
    return new;
  end if;
  raise exception 'job key "%" belongs to job % of task "%"; a job key can only replace a job of its own task, not one of "%"',
    old.key, old.id, (select t.identifier from graphile_worker._private_tasks t where t.id = old.task_id),
    (select t.identifier from graphile_worker._private_tasks t where t.id = new.task_id)
    using errcode = 'unique_violation',
          hint = 'Give each task keys of its own (for example prefixed with the task''s name).';
end;
$$;

create trigger pgjobs_guard_job_key_update
  before update on graphile_worker._private_jobs
  for each row
  when (old.key is not null and (new.key is null or new.task_id <> old.task_id))
  execute function pgjobs.guard_job_key_update();

-- ── Privileges ───────────────────────────────────────────────────────────────────────────
-- graphile-worker's functions kept PUBLIC's EXECUTE: only the schema's usage stood in the way.
revoke all on all functions in schema graphile_worker from public;
revoke all on all tables in schema pgjobs from public;
revoke all on all functions in schema pgjobs from public;
revoke all on all sequences in schema pgjobs from public;
