-- Job history and results: one row per attempt of every job, in pgjobs.job_runs.
--
-- How rows get written (measured and argued in README "Job history"):
--   * A row is written when an attempt ends. While it runs, the attempt is graphile-worker's
--     locked job itself; the pgjobs.runs view shows both, so `running` is queryable too.
--   * Statement-level triggers on graphile-worker's own jobs table record completions, failures
--     and lost attempts inside the engine's own statements (batched as the engine batches), so
--     no attempt goes unrecorded whatever moment a worker dies at.
--   * The runner writes what only it knows first (result, error stack, rejected): a
--     transactional task inside its own transaction, so a rerun after a crash sees "succeeded"
--     and stops. The triggers' inserts then find the row and leave it.

create table pgjobs.job_runs (
  id bigint generated always as identity primary key,
  job_id bigint not null,
  task text not null,
  queue text,
  payload jsonb,
  -- 1 for the first attempt. A `cancelled` row holds the attempt that would have run next.
  -- (`running` is never stored: see the pgjobs.runs view.)
  attempt integer not null,
  max_attempts integer not null,
  state text not null check (
    state in ('running', 'succeeded', 'failed', 'rejected', 'timed_out', 'abandoned', 'cancelled')
  ),
  -- For a failed attempt: will graphile-worker run the job again?
  will_retry boolean not null default false,
  result jsonb,
  error_message text,
  error_stack text,
  note text,
  worker_id text,
  started_at timestamptz,
  finished_at timestamptz,
  duration_ms double precision generated always as (extract(epoch from (finished_at - started_at)) * 1000) stored
);

comment on table pgjobs.job_runs is 'One row per attempt of every job: state, result, error, timings. Kept after graphile-worker deletes the job.';

-- Also the index for "what happened to job N" (pgjobs.job_status, waitForResult).
create unique index job_runs_one_row_per_attempt on pgjobs.job_runs (job_id, attempt);
-- For retention and time windows (summaries, the dashboard). Few indexes: every job writes here.
create index job_runs_finished on pgjobs.job_runs (finished_at);

-- Which task names SQL may enqueue (pgjobs.enqueue, and graphile_worker.add_job for a name it has
-- never seen), with a payload size cap. Kept in step with src/tasks/index.ts by `pgjobs migrate`
-- and at every worker start.
create table pgjobs.task_registry (
  task text primary key,
  max_payload_bytes integer not null default 65536 check (max_payload_bytes > 0),
  -- The task's own defaults, applied by pgjobs.enqueue when the caller gives none.
  default_max_attempts integer check (default_max_attempts between 1 and 100),
  default_queue text,
  updated_at timestamptz not null default now()
);

comment on table pgjobs.task_registry is 'Tasks the TypeScript registry knows; SQL enqueue refuses any other name.';

-- Final states of a job wake waitForResult() listeners. Payload: the job id. Sent from the
-- triggers, so once per engine statement (a batch of jobs), not once per job transaction.
create function pgjobs.notify_finished(job_ids bigint[]) returns void
language sql
set search_path = ''
as $$
  select pg_notify('pgjobs_job_finished', id::text) from unnest(job_ids) as id;
$$;

-- ── Triggers on graphile-worker's jobs table ─────────────────────────────────────────────
-- An attempt ends without completing when `locked_by` goes back to null. If `run_at` moved into
-- the future it failed (fail_job backs off by at least a second); otherwise the lock was cleared
-- by force_unlock_workers or the stale-lock sweep: the worker was lost and the attempt abandoned.
-- A job fetched again while still locked (graphile-worker retakes locks older than 4 hours) also
-- lost its previous attempt. `on conflict do nothing`: the runner's own row, when it wrote one
-- (the precise state, the stack, or a success that committed before the worker died), stands.
create function pgjobs.record_job_updates() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  ended_state text := case when new.locked_by is null and new.run_at > now() then 'failed' else 'abandoned' end;
begin
  insert into pgjobs.job_runs (job_id, task, queue, payload, attempt, max_attempts, state, will_retry,
                               error_message, note, worker_id, started_at, finished_at)
  select old.id, t.identifier, q.queue_name, old.payload::jsonb, old.attempts, new.max_attempts, ended_state,
         ended_state = 'failed' and new.attempts < new.max_attempts,
         case when ended_state = 'failed' then new.last_error end,
         case when ended_state = 'abandoned'
              then 'the worker running this attempt stopped without reporting (lock cleared or expired)' end,
         old.locked_by, old.locked_at, now()
    from graphile_worker._private_tasks t
    left join graphile_worker._private_job_queues q on q.id = new.job_queue_id
   where t.id = new.task_id
  on conflict (job_id, attempt) do nothing;

  -- A job that failed its last attempt (or was rejected) is final: wake its waiters.
  if ended_state = 'failed' and new.attempts >= new.max_attempts then
    perform pgjobs.notify_finished(array[new.id]);
  end if;
  return null;
end;
$$;

-- A job leaves the table. Locked by a worker: graphile-worker completed it (success), recorded
-- here unless the runner already wrote the row with its result. Not locked: a person or the app
-- removed it (remove_job, cancel), unless it had used up its attempts (cleanup of a permanently
-- failed job, already recorded).
create function pgjobs.record_job_deletes() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  finished bigint[];
begin
  insert into pgjobs.job_runs (job_id, task, queue, payload, attempt, max_attempts, state, note, worker_id,
                               started_at, finished_at)
  select o.id, t.identifier, q.queue_name, o.payload::jsonb,
         case when o.locked_by is not null then o.attempts else o.attempts + 1 end, o.max_attempts,
         case when o.locked_by is not null then 'succeeded' else 'cancelled' end,
         case when o.locked_by is null then 'removed from the queue before it completed' end,
         o.locked_by, o.locked_at, now()
    from old_jobs o
    join graphile_worker._private_tasks t on t.id = o.task_id
    left join graphile_worker._private_job_queues q on q.id = o.job_queue_id
   where o.locked_by is not null or o.attempts < o.max_attempts
  on conflict (job_id, attempt) do nothing;

  -- One notification per job, sent once per completion batch (graphile-worker deletes in batches).
  select array_agg(o.id) into finished from old_jobs o where o.locked_by is not null or o.attempts < o.max_attempts;
  if finished is not null then perform pgjobs.notify_finished(finished); end if;
  return null;
end;
$$;

-- A row trigger whose WHEN is checked in C: graphile-worker's fetches (nothing locked before)
-- never call it, so the hot path pays nothing; only attempts that end without completing do.
create trigger pgjobs_record_job_updates
  after update on graphile_worker._private_jobs
  for each row
  when (old.locked_by is not null
        and ((new.locked_by is null and new.attempts = old.attempts) or new.attempts > old.attempts))
  execute function pgjobs.record_job_updates();

create trigger pgjobs_record_job_deletes
  after delete on graphile_worker._private_jobs
  referencing old table as old_jobs
  for each statement execute function pgjobs.record_job_deletes();

-- graphile_worker.add_job() creates a task row the first time it sees a name. Refusing names the
-- registry does not know makes a typo'd task fail the enqueueing statement instead of waiting
-- forever for a worker that will never come.
create function pgjobs.refuse_unknown_task() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select 1 from pgjobs.task_registry r where r.task = new.identifier) then
    raise exception 'unknown task "%": no pgjobs worker runs it', new.identifier
      using errcode = 'invalid_parameter_value',
            hint = 'Registered tasks: ' || coalesce((select string_agg(task, ', ' order by task) from pgjobs.task_registry), 'none')
                   || '. Check the name, or add the task to src/tasks/index.ts and run pgjobs migrate.';
  end if;
  return new;
end;
$$;

create trigger pgjobs_refuse_unknown_task
  before insert on graphile_worker._private_tasks
  for each row execute function pgjobs.refuse_unknown_task();

-- ── Written by the runner ─────────────────────────────────────────────────────────────────
-- Records an attempt's end with what the runner knows (result, or error and stack, and the
-- precise state), while the job is still locked by this attempt, so timings and worker come from
-- the job row.
create function pgjobs.finish_run(
  p_job_id bigint, p_attempt integer, p_state text, p_result jsonb, p_error_message text,
  p_error_stack text, p_note text, p_will_retry boolean
) returns void
language plpgsql -- not sql: PL/pgSQL keeps this hot statement's plan between calls
set search_path = ''
as $$
begin
  insert into pgjobs.job_runs (job_id, task, queue, payload, attempt, max_attempts, state, will_retry, result,
                               error_message, error_stack, note, worker_id, started_at, finished_at)
  select j.id, t.identifier, q.queue_name, j.payload::jsonb, p_attempt, j.max_attempts, p_state, p_will_retry,
         p_result, p_error_message, p_error_stack, p_note, j.locked_by, j.locked_at, now()
    from graphile_worker._private_jobs j
    join graphile_worker._private_tasks t on t.id = j.task_id
    left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
   where j.id = p_job_id
  on conflict (job_id, attempt) do update
     set state = excluded.state, will_retry = excluded.will_retry, result = excluded.result,
         error_message = excluded.error_message, error_stack = excluded.error_stack, note = excluded.note,
         finished_at = excluded.finished_at;
  -- No NOTIFY here: the engine's completion or failure of the job, moments later and batched,
  -- sends it (see the triggers); a NOTIFY per job would serialise every job's commit.
end;
$$;

-- ── Reading ───────────────────────────────────────────────────────────────────────────────
-- "What happened to job N?" One row per job, live or finished: its state now, the latest
-- attempt's result or error, and how many attempts it had.
create view pgjobs.job_status as
with latest as not materialized (
  select distinct on (job_id) *
    from pgjobs.job_runs
   order by job_id, id desc
)
select j.id as job_id,
       t.identifier as task,
       q.queue_name as queue,
       case
         when j.locked_by is not null then 'running'
         when j.attempts >= j.max_attempts then coalesce(l.state, 'failed')
         when j.attempts > 0 then 'retrying'
         when j.run_at > now() then 'scheduled'
         else 'queued'
       end as state,
       true as in_queue,
       j.attempts,
       j.max_attempts,
       j.run_at,
       l.result,
       coalesce(l.error_message, j.last_error) as error_message,
       l.error_stack,
       j.created_at,
       l.finished_at
  from graphile_worker._private_jobs j
  join graphile_worker._private_tasks t on t.id = j.task_id
  left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
  left join latest l on l.job_id = j.id
union all
select l.job_id, l.task, l.queue, l.state, false, l.attempt, l.max_attempts, null, l.result, l.error_message,
       l.error_stack, null, l.finished_at
  from latest l
 where not exists (select 1 from graphile_worker._private_jobs j where j.id = l.job_id);

comment on view pgjobs.job_status is 'What happened to job N: one row per job, live (in_queue) or finished.';

-- Every attempt, finished or running: pgjobs.job_runs plus the attempts running right now
-- (graphile-worker's locked jobs).
create view pgjobs.runs as
select r.id, r.job_id, r.task, r.queue, r.payload, r.attempt, r.max_attempts, r.state, r.will_retry, r.result,
       r.error_message, r.error_stack, r.note, r.worker_id, r.started_at, r.finished_at, r.duration_ms
  from pgjobs.job_runs r
union all
select null, j.id, t.identifier, q.queue_name, j.payload::jsonb, j.attempts, j.max_attempts, 'running', false, null,
       null, null, null, j.locked_by, j.locked_at, null, extract(epoch from (now() - j.locked_at)) * 1000
  from graphile_worker._private_jobs j
  join graphile_worker._private_tasks t on t.id = j.task_id
  left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
 where j.locked_by is not null
   and not exists (select 1 from pgjobs.job_runs r where r.job_id = j.id and r.attempt = j.attempts);

comment on view pgjobs.runs is 'Every attempt of every job: finished ones from pgjobs.job_runs, running ones from the live queue.';

-- Per task over a window: attempts by state, success rate, p50/p95 duration of finished attempts.
create function pgjobs.task_summary(window_size interval default interval '24 hours')
returns table (
  task text, attempts bigint, succeeded bigint, failed bigint, rejected bigint, timed_out bigint,
  abandoned bigint, cancelled bigint, running bigint, success_rate numeric, p50_ms double precision,
  p95_ms double precision
)
language sql stable
set search_path = ''
as $$
  select r.task,
         count(*),
         count(*) filter (where r.state = 'succeeded'),
         count(*) filter (where r.state = 'failed'),
         count(*) filter (where r.state = 'rejected'),
         count(*) filter (where r.state = 'timed_out'),
         count(*) filter (where r.state = 'abandoned'),
         count(*) filter (where r.state = 'cancelled'),
         count(*) filter (where r.state = 'running'),
         round(count(*) filter (where r.state = 'succeeded')::numeric
               / nullif(count(*) filter (where r.state not in ('running', 'cancelled')), 0), 4),
         percentile_cont(0.5) within group (order by r.duration_ms),
         percentile_cont(0.95) within group (order by r.duration_ms)
    from pgjobs.runs r
   where coalesce(r.finished_at, r.started_at) >= now() - window_size
   group by r.task
   order by r.task;
$$;

-- ── Enqueue from SQL ──────────────────────────────────────────────────────────────────────
-- For app code and triggers. Refuses unknown tasks and oversized payloads with errors that say
-- what to do, bounds the options, then hands over to graphile_worker.add_job.
create function pgjobs.enqueue(
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
set search_path = ''
as $$
declare
  cap integer;
  task_max_attempts integer;
  task_queue text;
  size integer;
  job graphile_worker._private_jobs;
begin
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
  size := octet_length(payload::text);
  if size > cap then
    raise exception 'pgjobs.enqueue: payload for "%" is % bytes; the cap is % bytes', enqueue.task, size, cap
      using errcode = 'program_limit_exceeded',
            hint = 'Store large data in a table and pass its id in the payload.';
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
    run_at => enqueue.run_at, max_attempts => coalesce(enqueue.max_attempts, task_max_attempts), job_key => enqueue.job_key,
    priority => enqueue.priority
  );
  return job.id;
end;
$$;

comment on function pgjobs.enqueue is 'Enqueue a registered pgjobs task from SQL or a trigger; refuses unknown tasks and oversized payloads.';

-- ── Privileges ────────────────────────────────────────────────────────────────────────────
-- Nothing here is for the app's Supabase roles unless granted one function at a time.
revoke all on all tables in schema pgjobs from public;
revoke all on all functions in schema pgjobs from public;
revoke all on schema graphile_worker from public;
do $$
declare
  app_role text;
begin
  foreach app_role in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = app_role) then
      execute format('revoke all on all tables in schema pgjobs from %I', app_role);
      execute format('revoke all on all functions in schema pgjobs from %I', app_role);
      execute format('revoke all on all tables in schema graphile_worker from %I', app_role);
      execute format('revoke all on all functions in schema graphile_worker from %I', app_role);
      execute format('revoke usage on schema graphile_worker from %I', app_role);
    end if;
  end loop;
end;
$$;
