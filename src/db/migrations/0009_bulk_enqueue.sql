-- Bulk enqueue (issue #8): pgjobs.enqueue_many, one statement for a batch of jobs with
-- pgjobs.enqueue's guards, and a cheaper pgjobs.enqueue.
--
-- Why one pgjobs.enqueue call cost ~1.3 ms even inside one statement (measured with
-- track_functions = 'all', auto_explain with nested statements and plan_cache_mode, 5,000 calls
-- in one statement, µs per call):
--   graphile_worker.add_job → add_jobs      ~300  (the engine: add_job runs add_jobs' five
--                                                   statements for a one-element array and plans
--                                                   them again on every call, the plan cache
--                                                   choosing custom plans; planning costs more than
--                                                   running them, and it grows with the rows the
--                                                   statement has inserted while the statistics say
--                                                   the table is empty: ~0.8 ms each over 20,000)
--   pgjobs.nests_deeper_than                  ~70  (a query per level, even for {"id": 1})
--   pgjobs.authorize_enqueue                  ~18  (caller_is_trusted reads pg_roles; and
--                                                   caller_job_key asked the same again)
--   pgjobs.apply_task_defaults (trigger)      ~14
--   pgjobs.enqueue's own body                 ~18
-- The engine's share is paid by a raw add_job in the same statement too. pgjobs' share is cut
-- here: the depth walk runs only for a payload with enough brackets to be that deep (65 `[` or
-- `{`, counted in C), and the caller is asked once whether it is trusted. (Forcing generic plans
-- would make add_job 3-4x faster, but freezes plans made while the jobs table looked empty: the
-- engine's key-detaching UPDATE and the job-key guard then scan the whole table per keyed call.)
-- A batch should not pay add_job per job at all: pgjobs.enqueue_many calls add_jobs once.

-- ── pgjobs.enqueue: same signature, checks, order and messages; less work per call ───────
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
  payload_text text := payload::text;
  size integer := octet_length(payload_text);
  trusted boolean := pgjobs.caller_is_trusted();
  job graphile_worker._private_jobs;
begin
  if not trusted then
    perform pgjobs.authorize_enqueue(enqueue.task, enqueue.queue, size, enqueue.run_at, enqueue.job_key, 1,
                                     enqueue.priority, enqueue.max_attempts);
  end if;
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
  -- 64 levels below the top take 65 nested objects or arrays, so 65 opening brackets (counting
  -- those inside strings too errs only towards walking).
  if length(payload_text) - length(translate(payload_text, '[{', '')) > 64 and pgjobs.nests_deeper_than(payload, 64) then
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
    -- pgjobs.caller_job_key, without asking again whether the caller is trusted
    job_key => case when enqueue.job_key is null or trusted then enqueue.job_key
                    else pgjobs.caller_identity() || '/' || enqueue.job_key end,
    priority => enqueue.priority
  );
  return job.id;
end;
$$;

comment on function pgjobs.enqueue is 'Enqueue a registered pgjobs task from SQL or a trigger; checks the caller''s grant, refuses unknown tasks and oversized payloads.';

-- ── pgjobs.enqueue_many ──────────────────────────────────────────────────────────────────
-- One job of a batch, as parsed from the caller's JSON (internal to enqueue_many).
create type pgjobs.bulk_job as (
  n integer,
  task text,
  payload jsonb,
  payload_text text,
  run_at timestamptz,
  job_key text,
  queue text,
  priority integer,
  max_attempts integer
);

-- One job enqueue_many added: its place in the batch (from 0), id, and what the engine made of it.
create type pgjobs.enqueued_job as (
  job_index integer,
  job_id bigint,
  run_at timestamptz,
  attempts integer,
  max_attempts integer,
  queue text,
  key text
);

-- Enqueues a batch in one call: `jobs` is a JSON array of objects
--   {"task": …, "payload": {…}, "run_at": …, "job_key": …, "queue": …, "priority": …, "max_attempts": …}
-- (all but task optional, as pgjobs.enqueue's arguments). JSON rather than an array of a
-- composite type: PostgREST passes it as the request body, a trigger builds it with
-- jsonb_agg, and TypeScript sends it as one parameter; a misspelt key is refused rather than
-- ignored. Each job gets pgjobs.enqueue's checks, with the same messages prefixed by where the
-- job is (`jobs[3]`, from 0); one failing job fails the whole statement. A granted caller's
-- grant is checked per job (queue, size, run_at, priority, attempts, key), then charged once per
-- task with that task's count, so the rate limit counts every job. The jobs go to the engine in
-- one add_jobs call. Returns one row per job, in the order given. job_key_mode: 'replace' (as
-- pgjobs.enqueue) or 'preserve_run_at'; two jobs of one batch may not share a key.
create function pgjobs.enqueue_many(jobs jsonb, job_key_mode text default 'replace')
returns setof pgjobs.enqueued_job
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  trusted boolean := pgjobs.caller_is_trusted();
  caller text;
  batch pgjobs.bulk_job[];
  bad record;
  current_job integer;
  state text;
  message text;
  detail text;
  hint text;
  results pgjobs.enqueued_job[];
  added_jobs graphile_worker._private_jobs[];
  direction integer;
  in_place boolean;
begin
  if jobs is null or jsonb_typeof(jobs) <> 'array' then
    raise exception 'pgjobs.enqueue_many: jobs must be a JSON array of {"task": …, "payload": {…}, …}, got %',
      coalesce(jsonb_typeof(jobs), 'null') using errcode = 'invalid_parameter_value';
  end if;
  if job_key_mode is null or job_key_mode not in ('replace', 'preserve_run_at') then
    raise exception 'pgjobs.enqueue_many: job_key_mode must be ''replace'' or ''preserve_run_at'', got %',
      coalesce(job_key_mode, 'null') using errcode = 'invalid_parameter_value';
  end if;
  if jsonb_array_length(jobs) = 0 then
    return;
  end if;

  -- The shape of each job: an object with known keys of the right JSON types.
  select e.n - 1 as i, e.job,
         case
           when jsonb_typeof(e.job) <> 'object' then format('must be an object, got %s', jsonb_typeof(e.job))
           when e.job - array['task', 'payload', 'run_at', 'job_key', 'queue', 'priority', 'max_attempts'] <> '{}'
             then format('has unknown keys (%s); a job has task, payload, run_at, job_key, queue, priority, max_attempts',
                         (select string_agg(k, ', ') from jsonb_object_keys(e.job) k
                           where k not in ('task', 'payload', 'run_at', 'job_key', 'queue', 'priority', 'max_attempts')))
           when jsonb_typeof(e.job -> 'task') is distinct from 'string' then 'needs "task", the task''s name as a string'
           when jsonb_typeof(e.job -> 'run_at') not in ('string', 'null') then 'has a run_at that is not a timestamp string'
           when jsonb_typeof(e.job -> 'job_key') not in ('string', 'null') then 'has a job_key that is not a string'
           when jsonb_typeof(e.job -> 'queue') not in ('string', 'null') then 'has a queue that is not a string'
           when jsonb_typeof(e.job -> 'priority') not in ('number', 'null')
                or (e.job ->> 'priority') !~ '^-?\d{1,9}$' and jsonb_typeof(e.job -> 'priority') = 'number'
             then 'has a priority that is not an integer'
           when jsonb_typeof(e.job -> 'max_attempts') not in ('number', 'null')
                or (e.job ->> 'max_attempts') !~ '^-?\d{1,9}$' and jsonb_typeof(e.job -> 'max_attempts') = 'number'
             then 'has a max_attempts that is not an integer'
         end as problem
    into bad
    from jsonb_array_elements(jobs) with ordinality as e(job, n)
   where jsonb_typeof(e.job) <> 'object'
      or e.job - array['task', 'payload', 'run_at', 'job_key', 'queue', 'priority', 'max_attempts'] <> '{}'
      or jsonb_typeof(e.job -> 'task') is distinct from 'string'
      or jsonb_typeof(e.job -> 'run_at') not in ('string', 'null')
      or jsonb_typeof(e.job -> 'job_key') not in ('string', 'null')
      or jsonb_typeof(e.job -> 'queue') not in ('string', 'null')
      or jsonb_typeof(e.job -> 'priority') not in ('number', 'null')
      or (jsonb_typeof(e.job -> 'priority') = 'number' and (e.job ->> 'priority') !~ '^-?\d{1,9}$')
      or jsonb_typeof(e.job -> 'max_attempts') not in ('number', 'null')
      or (jsonb_typeof(e.job -> 'max_attempts') = 'number' and (e.job ->> 'max_attempts') !~ '^-?\d{1,9}$')
   order by e.n
   limit 1;
  if found then
    raise exception 'pgjobs.enqueue_many: jobs[%] %', bad.i, bad.problem using errcode = 'invalid_parameter_value';
  end if;

  begin
    select array_agg(row(e.n - 1, e.job ->> 'task', p.payload, p.payload::text, (e.job ->> 'run_at')::timestamptz,
                         e.job ->> 'job_key', e.job ->> 'queue', (e.job ->> 'priority')::integer,
                         (e.job ->> 'max_attempts')::integer)::pgjobs.bulk_job order by e.n)
      into batch
      from jsonb_array_elements(jobs) with ordinality as e(job, n)
      cross join lateral (select coalesce(e.job -> 'payload', '{}'::jsonb) as payload) p;
  exception when invalid_datetime_format or datetime_field_overflow or invalid_text_representation then
    -- Only a run_at can fail to parse here: find which, to say so.
    get stacked diagnostics message = message_text;
    for bad in select e.n - 1 as i, e.job ->> 'run_at' as run_at
                 from jsonb_array_elements(jobs) with ordinality as e(job, n) order by e.n loop
      begin
        perform bad.run_at::timestamptz;
      exception when others then
        raise exception 'pgjobs.enqueue_many: jobs[%] has a run_at PostgreSQL cannot read (%): %', bad.i, bad.run_at, message
          using errcode = 'invalid_datetime_format';
      end;
    end loop;
    raise;
  end;

  -- A granted caller: each task's first job against its role's grant (n_jobs => 0 checks
  -- without charging, and a missing grant names that job), then the task's count charged once,
  -- so the per-minute limits count every job and a batch over them is refused before any
  -- per-job work (a flood of large batches costs the caller's grant check, not seconds each);
  -- then every job against the grant. A refusal rolls the charges back with the statement.
  if not trusted then
    current_job := null;
    begin
      for bad in select b.*, t.jobs
                   from (select b.task, count(*)::integer as jobs, min(b.n) as first from unnest(batch) b group by b.task) t
                   join unnest(batch) b on b.task = t.task and b.n = t.first
                  order by t.first loop
        current_job := bad.n;
        perform pgjobs.authorize_enqueue(bad.task, bad.queue, octet_length(bad.payload_text), bad.run_at, bad.job_key, 0,
                                         bad.priority, bad.max_attempts);
        current_job := null;
        perform pgjobs.authorize_enqueue(bad.task, null, 0, null, null, bad.jobs);
      end loop;
      for bad in select b.* from unnest(batch) b order by b.n loop
        current_job := bad.n;
        perform pgjobs.authorize_enqueue(bad.task, bad.queue, octet_length(bad.payload_text), bad.run_at, bad.job_key, 0,
                                         bad.priority, bad.max_attempts);
      end loop;
      current_job := null;
    exception when others then
      get stacked diagnostics state = returned_sqlstate, message = message_text, detail = pg_exception_detail,
                              hint = pg_exception_hint;
      message := case when current_job is null then replace(message, 'pgjobs.enqueue:', 'pgjobs.enqueue_many:')
                      else replace(message, 'pgjobs.enqueue:', format('pgjobs.enqueue_many: jobs[%s]:', current_job)) end;
      -- An empty DETAIL or HINT passed on would reach PostgREST's clients as "" instead of null.
      if detail <> '' and hint <> '' then
        raise exception using errcode = state, message = message, detail = detail, hint = hint;
      elsif detail <> '' then
        raise exception using errcode = state, message = message, detail = detail;
      elsif hint <> '' then
        raise exception using errcode = state, message = message, hint = hint;
      end if;
      raise exception using errcode = state, message = message;
    end;
    caller := pgjobs.caller_identity();
  end if;

  -- pgjobs.enqueue's checks, in its order, the first failing job named.
  select b.n, b.task, r.task is null as unknown, b.payload, b.payload_text, octet_length(b.payload_text) as size,
         r.max_payload_bytes as cap, b.run_at, b.priority, b.max_attempts
    into bad
    from unnest(batch) b
    left join pgjobs.task_registry r on r.task = b.task
   where r.task is null
      or jsonb_typeof(b.payload) <> 'object'
      or octet_length(b.payload_text) > r.max_payload_bytes
      or (length(b.payload_text) - length(translate(b.payload_text, '[{', '')) > 64 and pgjobs.nests_deeper_than(b.payload, 64))
      or b.run_at > now() + interval '1 year'
      or b.max_attempts not between 1 and 100
      or b.priority not between -1000 and 1000
   order by b.n
   limit 1;
  if found then
    if bad.unknown then
      raise exception 'pgjobs.enqueue_many: jobs[%]: unknown task "%"', bad.n, bad.task
        using errcode = 'invalid_parameter_value',
              hint = 'Registered tasks: ' || coalesce((select string_agg(r.task, ', ' order by r.task) from pgjobs.task_registry r), 'none') || '.';
    elsif jsonb_typeof(bad.payload) <> 'object' then
      raise exception 'pgjobs.enqueue_many: jobs[%]: the payload for "%" must be a JSON object, got %', bad.n, bad.task, jsonb_typeof(bad.payload)
        using errcode = 'invalid_parameter_value';
    elsif bad.size > bad.cap then
      raise exception 'pgjobs.enqueue_many: jobs[%]: payload for "%" is % bytes; the cap is % bytes', bad.n, bad.task, bad.size, bad.cap
        using errcode = 'program_limit_exceeded', hint = 'Store large data in a table and pass its id in the payload.';
    elsif bad.run_at > now() + interval '1 year' then
      raise exception 'pgjobs.enqueue_many: jobs[%]: run_at % is more than a year ahead', bad.n, bad.run_at
        using errcode = 'invalid_parameter_value';
    elsif bad.max_attempts not between 1 and 100 then
      raise exception 'pgjobs.enqueue_many: jobs[%]: max_attempts must be between 1 and 100, got %', bad.n, bad.max_attempts
        using errcode = 'invalid_parameter_value';
    elsif bad.priority not between -1000 and 1000 then
      raise exception 'pgjobs.enqueue_many: jobs[%]: priority must be between -1000 and 1000, got %', bad.n, bad.priority
        using errcode = 'invalid_parameter_value';
    else
      raise exception 'pgjobs.enqueue_many: jobs[%]: the payload for "%" is nested deeper than 64 levels', bad.n, bad.task
        using errcode = 'program_limit_exceeded', hint = 'Flatten the payload.';
    end if;
  end if;

  -- One add_jobs upserts a key once: two jobs of the batch with one key would fail it obscurely.
  select min(b.n) as first, max(b.n) as second, b.job_key into bad
    from unnest(batch) b where b.job_key is not null group by b.job_key having count(*) > 1 order by min(b.n) limit 1;
  if found then
    raise exception 'pgjobs.enqueue_many: jobs[%] and jobs[%] have the same job_key "%"; a batch may give a key to one job only',
      bad.first, bad.second, bad.job_key using errcode = 'invalid_parameter_value';
  end if;

  -- The whole batch in one call to the engine. Each job already has its task's queue and attempts,
  -- so the task-defaults trigger (a PL/pgSQL call per row, ~14 µs) is told to stand aside.
  perform set_config('pgjobs.task_defaults_applied', 'on', true);
  select array_agg(j) into added_jobs
    from graphile_worker.add_jobs(
           array(select (b.task, b.payload_text::json, coalesce(b.queue, r.default_queue), coalesce(b.run_at, now()),
                         coalesce(b.max_attempts, r.default_max_attempts)::smallint,
                         case when b.job_key is null or trusted then b.job_key else caller || '/' || b.job_key end,
                         coalesce(b.priority, 0)::smallint, null)::graphile_worker.job_spec
                   from unnest(batch) b join pgjobs.task_registry r on r.task = b.task
                  order by b.n),
           enqueue_many.job_key_mode = 'preserve_run_at') j;
  perform set_config('pgjobs.task_defaults_applied', '', true);

  -- add_jobs returns the jobs in an order of its own: its insert joins the specs with the tasks,
  -- and a hash join may return them reversed, or grouped by task. Each job is matched back to its
  -- place by what it is (task, key, payload, run_at, priority, queue): first in the order
  -- returned, then reversed (each a pass of cheap equality checks), else by sorting both sides,
  -- identical jobs pairing in id order. (Statements of their own: the queues and tasks add_jobs
  -- created are visible only to statements that start after it.)
  foreach direction in array array[1, -1] loop
    select array_agg(row(b.n, a.id, a.run_at, a.attempts, a.max_attempts, q.queue_name, a.key)::pgjobs.enqueued_job
                     order by b.n),
           bool_and(coalesce(
             t.identifier = b.task
             and a.key is not distinct from
                 case when b.job_key is null or trusted then b.job_key else caller || '/' || b.job_key end
             and a.payload::text = b.payload_text and a.priority = coalesce(b.priority, 0)
             and q.queue_name is not distinct from coalesce(b.queue, r.default_queue)
             and (a.run_at = coalesce(b.run_at, now()) or (b.job_key is not null and enqueue_many.job_key_mode = 'preserve_run_at')),
             false))
      into results, in_place
      from unnest(batch) b
      join pgjobs.task_registry r on r.task = b.task
      left join unnest(added_jobs) with ordinality a
        on a.ordinality = case when direction = 1 then b.n + 1 else cardinality(batch) - b.n end
      left join graphile_worker._private_tasks t on t.id = a.task_id
      left join graphile_worker._private_job_queues q on q.id = a.job_queue_id;
    exit when in_place;
  end loop;
  if not in_place then
    with wanted as (
      select b.n, b.task, coalesce(b.queue, r.default_queue) as queue_name,
             case when b.job_key is null or trusted then b.job_key else caller || '/' || b.job_key end as stored_key,
             b.payload_text, coalesce(b.run_at, now()) as effective_run_at, coalesce(b.priority, 0) as effective_priority,
             row_number() over (partition by b.task, b.job_key, b.payload_text, coalesce(b.run_at, now()),
                                             coalesce(b.priority, 0), coalesce(b.queue, r.default_queue)
                                order by b.n) as nth
        from unnest(batch) b join pgjobs.task_registry r on r.task = b.task
    ), added as (
      select j.id, t.identifier as task, q.queue_name, j.key as stored_key, j.payload::text as payload_text,
             j.run_at as added_run_at, j.priority as added_priority, j.attempts as added_attempts,
             j.max_attempts as added_max_attempts,
             row_number() over (partition by t.identifier, j.key, j.payload::text, j.run_at, j.priority, q.queue_name
                                order by j.id) as nth
        from unnest(added_jobs) j
        join graphile_worker._private_tasks t on t.id = j.task_id
        left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
    )
    select array_agg(row(w.n, a.id, a.added_run_at, a.added_attempts, a.added_max_attempts, a.queue_name,
                         a.stored_key)::pgjobs.enqueued_job order by w.n)
      into results
      from wanted w
      left join added a
        on a.task = w.task and a.stored_key is not distinct from w.stored_key and a.payload_text = w.payload_text
       and a.added_priority = w.effective_priority and a.queue_name is not distinct from w.queue_name and a.nth = w.nth
       -- preserve_run_at keeps a replaced job's run_at; its key alone names it
       and (a.added_run_at = w.effective_run_at or (w.stored_key is not null and enqueue_many.job_key_mode = 'preserve_run_at'));
  end if;
  select r.job_index into current_job from unnest(results) r where r.job_id is null order by r.job_index limit 1;
  if found then
    raise exception 'pgjobs.enqueue_many: graphile_worker.add_jobs did not return jobs[%] (its key held by a job that changed meanwhile?); nothing was enqueued', current_job
      using errcode = 'internal_error';
  end if;
  return query select r.* from unnest(results) r order by r.job_index;
end;
$$;

comment on function pgjobs.enqueue_many is 'Enqueue a batch of registered pgjobs tasks in one call (a JSON array of jobs), with pgjobs.enqueue''s checks; rows in the order given.';

-- ── The task-defaults trigger stands aside for enqueue_many ──────────────────────────────
-- 0004's trigger, with one more condition: enqueue_many gives every job its task's queue and
-- max_attempts itself and says so for the length of its add_jobs call. (A session that sets
-- pgjobs.task_defaults_applied itself only skips the defaults of its own jobs, which add_job lets
-- it choose anyway.)
drop trigger pgjobs_apply_task_defaults on graphile_worker._private_jobs;
create trigger pgjobs_apply_task_defaults
  before insert on graphile_worker._private_jobs
  for each row
  when ((new.max_attempts = 25 or new.job_queue_id is null or new.flags is not null)
        and current_setting('pgjobs.task_defaults_applied', true) is distinct from 'on')
  execute function pgjobs.apply_task_defaults();

-- ── Grants reach enqueue_many too ────────────────────────────────────────────────────────
-- 0007's grant_enqueue and revoke_enqueue, unchanged but for one line each: a role granted a task
-- may enqueue it one at a time or in batches (enqueue_many checks the same grant per job), and
-- loses both with its last grant.
create or replace function pgjobs.grant_enqueue(
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
  execute format('grant execute on function pgjobs.enqueue_many(jsonb, text) to %I', role);

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

create or replace function pgjobs.revoke_enqueue(role text, task text) returns boolean
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
    execute format('revoke execute on function pgjobs.enqueue_many(jsonb, text) from %I', role);
    execute format('revoke usage on schema pgjobs from %I', role);
  end if;
  return true;
end;
$$;

comment on function pgjobs.revoke_enqueue is 'Take back a role''s grant to enqueue a task (and the RPC function made for it).';

-- ── Privileges ───────────────────────────────────────────────────────────────────────────
revoke all on function pgjobs.enqueue_many(jsonb, text) from public;
do $$
declare
  grantee text;
begin
  foreach grantee in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = grantee) then
      execute format('revoke all on function pgjobs.enqueue_many(jsonb, text) from %I', grantee);
    end if;
  end loop;
  -- Roles granted a task before this migration may batch it too.
  for grantee in select distinct eg.role from pgjobs.enqueue_grants eg join pg_roles r on r.rolname = eg.role loop
    execute format('grant execute on function pgjobs.enqueue_many(jsonb, text) to %I', grantee);
  end loop;
end;
$$;
