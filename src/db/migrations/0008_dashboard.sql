-- The dashboard's reads of graphile-worker's private tables, its actions, and their audit trail.
--
-- Everything the dashboard (src/dashboard/) does to graphile-worker's private tables goes through
-- the functions here, so the engine's internals are touched in one reviewed place. Reads of
-- pgjobs' own views stay in TypeScript. Lists are paged by keyset on the job id (ids increase
-- with time), never by OFFSET, and every filter is a typed parameter: no SQL is built from input.

-- ── Audit ────────────────────────────────────────────────────────────────────────────────
-- One row per action taken from the dashboard: who (the basic-auth user, or "token"), from
-- where, what, on which jobs, and what came of it, written in the action's own transaction.
create table pgjobs.dashboard_actions (
  id bigint generated always as identity primary key,
  acted_at timestamptz not null default now(),
  actor text not null,
  remote_addr text,
  action text not null check (action in ('retry', 'cancel', 'run_now', 'bulk_retry', 'bulk_cancel')),
  job_ids bigint[] not null default '{}',
  -- What was asked: the edited payload, the filter of a bulk action, the cron item run.
  detail jsonb not null default '{}',
  -- Per job: what happened ({"42": "rescheduled", "43": "running"}), or the new job's id.
  outcome jsonb not null default '{}'
);

comment on table pgjobs.dashboard_actions is 'Actions taken from the pgjobs dashboard: who, from where, what, on which jobs, outcome.';

-- ── Index ────────────────────────────────────────────────────────────────────────────────
-- "Failed jobs", "recent failures" and every other non-success filter walk only the attempts
-- that did not succeed. Partial: a succeeded attempt (nearly every row) pays only this
-- predicate, not a btree insert, so the completion path keeps its cost; a failing attempt pays
-- one small insert. Without it, listing failed jobs walks the whole history when failures are
-- rare.
create index job_runs_not_succeeded on pgjobs.job_runs (job_id) where state <> 'succeeded';

-- ── Rollups ──────────────────────────────────────────────────────────────────────────────
-- A day of a busy system is a million attempts: counting them by minute for the chart, or by
-- task with their durations for the tasks page, reads every row (0.5 to 1.2 s, bench/dashboard.ts).
-- These tables keep those numbers per minute and per hour once an hour has closed, so a day's
-- page reads a few thousand small rows plus the attempts of the current hour. They are written
-- by pgjobs.dashboard_roll_up(), which the pages call; nothing on a job's path writes them.
create table pgjobs.dashboard_minutes (
  minute timestamptz primary key,
  succeeded bigint not null,
  failed bigint not null
);
create table pgjobs.dashboard_hours (
  hour timestamptz not null,
  task text not null,
  state text not null,
  attempts bigint not null,
  -- attempts whose task body started (cancelled ones did not)
  started bigint not null,
  primary key (hour, task, state)
);
-- Durations as a histogram: bucket b holds durations in [e^(b/20), e^((b+1)/20)) ms, about 5%
-- wide, so a percentile read from it is within 2.5%.
create table pgjobs.dashboard_durations (
  hour timestamptz not null,
  task text not null,
  bucket integer not null,
  attempts bigint not null,
  primary key (hour, task, bucket)
);
create table pgjobs.dashboard_rollup (
  only_row boolean primary key default true check (only_row),
  -- Every attempt that finished before this is in the tables above.
  rolled_until timestamptz not null
);

comment on table pgjobs.dashboard_hours is 'Attempts per hour, task and state, rolled up from pgjobs.job_runs for the dashboard.';

-- Rolls closed hours up: those that ended more than 5 minutes ago (an attempt's row is written
-- moments after its finished_at; one committed later than that would be missed), at most two
-- days per call so a first call on a long history stays bounded. Keeps 8 days. Returns the
-- frontier.
-- Callers that find another session rolling up go on without waiting.
create function pgjobs.dashboard_roll_up() returns timestamptz
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  done_until timestamptz;
  upto timestamptz := date_trunc('hour', now() - interval '5 minutes', 'UTC');
  keep_from timestamptz := date_trunc('hour', now() - interval '8 days', 'UTC');
begin
  select r.rolled_until into done_until from pgjobs.dashboard_rollup r;
  if done_until >= upto or not pg_try_advisory_xact_lock(hashtext('pgjobs.dashboard_roll_up')) then
    return coalesce(done_until, '-infinity');
  end if;
  -- again under the lock: another session may have just moved it
  select r.rolled_until into done_until from pgjobs.dashboard_rollup r;
  if done_until is null then
    -- First call: from the hour of the oldest attempt worth keeping (one read of the history).
    select date_trunc('hour', min(r.finished_at), 'UTC') into done_until
      from pgjobs.job_runs r where r.finished_at >= keep_from;
  end if;
  done_until := greatest(coalesce(done_until, upto), keep_from);
  if done_until >= upto then
    return done_until;
  end if;
  -- Two days per call at most; what is not rolled up yet is read from job_runs meanwhile.
  upto := least(upto, done_until + interval '2 days');

  insert into pgjobs.dashboard_minutes (minute, succeeded, failed)
  select date_trunc('minute', r.finished_at, 'UTC'),
         count(*) filter (where r.state = 'succeeded'),
         count(*) filter (where r.state in ('failed', 'rejected', 'timed_out', 'abandoned'))
    from pgjobs.job_runs r
   where r.finished_at >= done_until and r.finished_at < upto
   group by 1
  on conflict do nothing; -- hours rolled up before a lost frontier keep their numbers
  insert into pgjobs.dashboard_hours (hour, task, state, attempts, started)
  select date_trunc('hour', r.finished_at, 'UTC'), r.task, r.state, count(*), count(r.started_at)
    from pgjobs.job_runs r
   where r.finished_at >= done_until and r.finished_at < upto
   group by 1, 2, 3
  on conflict do nothing;
  insert into pgjobs.dashboard_durations (hour, task, bucket, attempts)
  select date_trunc('hour', r.finished_at, 'UTC'), r.task, floor(ln(greatest(r.duration_ms, 0.001)) * 20)::int, count(*)
    from pgjobs.job_runs r
   where r.finished_at >= done_until and r.finished_at < upto and r.duration_ms is not null
   group by 1, 2, 3
  on conflict do nothing;

  insert into pgjobs.dashboard_rollup (rolled_until) values (upto)
  on conflict (only_row) do update set rolled_until = excluded.rolled_until;
  delete from pgjobs.dashboard_minutes m where m.minute < keep_from;
  delete from pgjobs.dashboard_hours h where h.hour < keep_from;
  delete from pgjobs.dashboard_durations d where d.hour < keep_from;
  return upto;
end;
$$;

-- ── Reading ──────────────────────────────────────────────────────────────────────────────
-- A job's state as pgjobs.job_status computes it, from the job row and its latest attempt (also
-- written out in dashboard_jobs: keep the two alike).
create function pgjobs.live_job_state(j graphile_worker._private_jobs, latest_state text, latest_started timestamptz)
returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select case
    when j.locked_by is not null and pgjobs.body_started_at(j.locked_by, j.id, j.locked_at) is not null then 'running'
    when latest_state = 'succeeded' then 'succeeded'
    when j.attempts >= j.max_attempts and j.locked_by is null then
      case when latest_state in ('failed', 'rejected', 'timed_out', 'abandoned', 'marked_failed') then latest_state
           else 'failed' end
    when latest_started is not null then 'retrying'
    when j.run_at > now() then 'scheduled'
    else 'queued'
  end;
$$;

-- One page of jobs, newest first, one row per job: jobs in the queue with their state now, and
-- jobs that left it with the state of their last attempt. p_state: null (all), 'in_queue',
-- 'finished', or one state. Paged by p_before (a job id). Time bounds apply to when the job was
-- created (in the queue) or finished (history).
create function pgjobs.dashboard_jobs(
  p_state text, p_task text, p_queue text, p_from timestamptz, p_to timestamptz, p_before bigint, p_limit integer
) returns table (
  job_id bigint, task text, queue text, state text, in_queue boolean, attempts integer, max_attempts integer,
  run_at timestamptz, created_at timestamptz, finished_at timestamptz, error_message text
)
language plpgsql stable
set search_path = pg_catalog, pg_temp
-- Plans made for the filters given: a generic plan for "any task, any state" would serve none.
set plan_cache_mode = force_custom_plan
-- Walk the id index newest first and stop at a page: a whole-table scan and sort never wins at a
-- page of 50, but the planner cannot estimate a computed state and would pick one.
set enable_seqscan = off
as $$
declare
  live_states constant text[] := array['in_queue', 'queued', 'scheduled', 'running', 'retrying'];
  want_live boolean := p_state is null or p_state <> 'finished';
  want_finished boolean := p_state is null or not (p_state = any(live_states));
  -- History in a window that ended long ago: read the window through the BRIN index on
  -- finished_at and sort it, rather than walk every newer job to reach it. The cost of each way is
  -- about the rows it reads, and rows arrive at an even enough pace to compare them by time.
  window_first boolean := p_from is not null and p_to is not null and p_to - p_from < now() - p_to;
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'pgjobs.dashboard_jobs: p_limit must be between 1 and 1000, got %', p_limit
      using errcode = 'invalid_parameter_value';
  end if;
  return query
  with live as (
    -- pgjobs.live_job_state, written out: a call per row (its pinned search_path keeps it from
    -- being inlined) cost 14 µs, and a rare state's filter computes it for every candidate.
    select j.id, t.identifier, q.queue_name,
           case
             when j.locked_by is not null and pgjobs.body_started_at(j.locked_by, j.id, j.locked_at) is not null
               then 'running'
             when l.state = 'succeeded' then 'succeeded'
             when j.attempts >= j.max_attempts and j.locked_by is null then
               case when l.state in ('failed', 'rejected', 'timed_out', 'abandoned', 'marked_failed') then l.state
                    else 'failed' end
             when l.started_at is not null then 'retrying'
             when j.run_at > now() then 'scheduled'
             else 'queued'
           end as st,
           coalesce(l.attempts_made, 0) as made, j.max_attempts::integer as max_att, j.run_at, j.created_at,
           l.finished_at, coalesce(l.error_message, j.last_error) as err
      from graphile_worker._private_jobs j
      join graphile_worker._private_tasks t on t.id = j.task_id
      left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
      left join lateral (
        select r.state, r.started_at, r.finished_at, r.error_message,
               case when r.started_at is null then r.attempt - 1 else r.attempt end as attempts_made
          from pgjobs.job_runs r where r.job_id = j.id order by r.attempt desc limit 1
      ) l on true
     where want_live
       and (p_before is null or j.id < p_before)
       and (p_task is null or t.identifier = p_task)
       and (p_queue is null or q.queue_name = p_queue)
       and (p_from is null or j.created_at >= p_from)
       and (p_to is null or j.created_at < p_to)
       -- cheap column tests first, so a rare state does not compute every job's state
       and (p_state is null or p_state = 'in_queue'
            or (p_state = 'running' and j.locked_by is not null)
            or (p_state = 'queued' and j.attempts < j.max_attempts and j.run_at <= now())
            or (p_state = 'scheduled' and j.attempts < j.max_attempts and j.run_at > now())
            or (p_state = 'retrying' and j.attempts > 0 and j.attempts < j.max_attempts)
            or (p_state not in ('running', 'queued', 'scheduled', 'retrying') and j.attempts >= j.max_attempts))
     order by j.id desc
  ), live_page as (
    select * from live
     where p_state is null or p_state = 'in_queue' or live.st = p_state
     order by live.id desc
     limit p_limit
  ), finished_page as (
    select r.job_id, r.task, r.queue, r.state, r.attempt, r.started_at, r.max_attempts, r.finished_at, r.error_message
      from pgjobs.job_runs r
     where want_finished
       and (p_before is null or r.job_id < p_before)
       and (p_task is null or r.task = p_task)
       and (p_queue is null or r.queue = p_queue)
       and (p_from is null or r.finished_at >= p_from)
       and (p_to is null or r.finished_at < p_to)
       and (p_state is null or p_state = 'finished' or r.state = p_state)
       -- the job's last attempt, of a job no longer in the queue
       and not exists (select 1 from pgjobs.job_runs n where n.job_id = r.job_id and n.attempt > r.attempt)
       and not exists (select 1 from graphile_worker._private_jobs k where k.id = r.job_id)
     -- job_id + 0 cannot walk the id index, so the planner reads the window and sorts it
     order by case when window_first then r.job_id + 0 else r.job_id end desc, r.attempt desc
     limit p_limit
  )
  select * from (
    select p.id, p.identifier, p.queue_name, p.st, true, p.made, p.max_att, p.run_at, p.created_at, p.finished_at, p.err
      from live_page p
    union all
    select f.job_id, f.task, f.queue, f.state, false,
           case when f.started_at is null then f.attempt - 1 else f.attempt end, f.max_attempts, null::timestamptz,
           null::timestamptz, f.finished_at, f.error_message
      from finished_page f
  ) page
  order by 1 desc
  limit p_limit;
end;
$$;

-- A job in the queue, with what the public graphile_worker.jobs view leaves out (its payload).
create function pgjobs.dashboard_job(p_job_id bigint)
returns table (
  job_id bigint, task text, queue text, state text, payload json, priority integer, run_at timestamptz,
  attempts integer, max_attempts integer, last_error text, key text, locked_by text, locked_at timestamptz,
  created_at timestamptz, updated_at timestamptz
)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select j.id, t.identifier, q.queue_name, pgjobs.live_job_state(j, l.state, l.started_at), j.payload,
         j.priority::integer, j.run_at, j.attempts::integer, j.max_attempts::integer, j.last_error, j.key, j.locked_by,
         j.locked_at, j.created_at, j.updated_at
    from graphile_worker._private_jobs j
    join graphile_worker._private_tasks t on t.id = j.task_id
    left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
    left join lateral (
      select r.state, r.started_at from pgjobs.job_runs r where r.job_id = j.id order by r.attempt desc limit 1
    ) l on true
   where j.id = p_job_id;
$$;

-- The queue now, per queue and task, in coarse states (one pass over the jobs table): due and
-- waiting, scheduled for later, held by a worker, waiting to be retried, out of attempts. The
-- oldest due job's run_at says how long the queue has kept someone waiting.
create function pgjobs.queue_counts()
returns table (queue text, task text, state text, jobs bigint, oldest_run_at timestamptz)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select q.queue_name, t.identifier, c.state, count(*), min(j.run_at)
    from graphile_worker._private_jobs j
    join graphile_worker._private_tasks t on t.id = j.task_id
    left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
    cross join lateral (select case
      when j.locked_by is not null then 'locked'
      when j.attempts >= j.max_attempts then 'failed'
      when j.run_at > now() then 'scheduled'
      when j.attempts > 0 then 'retrying'
      else 'waiting' end as state) c
   group by 1, 2, 3;
$$;

-- Each crontab item graphile-worker has seen: since when, and the tick it last fired for.
create function pgjobs.cron_status()
returns table (identifier text, known_since timestamptz, last_execution timestamptz)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select k.identifier, k.known_since, k.last_execution from graphile_worker._private_known_crontabs k;
$$;

-- ── Actions ──────────────────────────────────────────────────────────────────────────────
-- Retry: a job in the queue and not held by a worker gets fresh attempts on top of those made
-- (its task's max attempts, as `pgjobs retry` gives), runs now, and takes the edited payload if
-- one is given (validated by the task's schema before this is called); its revision moves on, so
-- an earlier success of the old payload does not count as this one's. A job that left the queue
-- is enqueued again with its recorded (or the edited) payload. Returns each job's outcome:
-- rescheduled, enqueued_again (new_job_id), running, payload_not_kept, absent.
create function pgjobs.dashboard_retry(
  p_job_ids bigint[], p_payload json, p_actor text, p_remote_addr text, p_action text, p_detail jsonb
) returns table (job_id bigint, outcome text, new_job_id bigint)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_id bigint;
  live graphile_worker._private_jobs;
  last pgjobs.job_runs;
  fresh integer;
  added graphile_worker._private_jobs;
  outcomes jsonb := '{}';
begin
  if p_action not in ('retry', 'bulk_retry') then
    raise exception 'pgjobs.dashboard_retry: unknown action %', p_action using errcode = 'invalid_parameter_value';
  end if;
  foreach v_id in array coalesce(p_job_ids, '{}') loop
    job_id := v_id;
    new_job_id := null;
    select * into live from graphile_worker._private_jobs j where j.id = v_id for update;
    if found then
      if live.locked_by is not null then
        outcome := 'running';
      else
        select coalesce(r.default_max_attempts, 25) into fresh
          from graphile_worker._private_tasks t left join pgjobs.task_registry r on r.task = t.identifier
         where t.id = live.task_id;
        update graphile_worker._private_jobs j
           set payload = coalesce(p_payload, j.payload), run_at = now(),
               max_attempts = least(j.attempts + coalesce(fresh, 25), 32767), revision = j.revision + 1,
               updated_at = now()
         where j.id = live.id;
        outcome := 'rescheduled';
      end if;
    else
      select * into last from pgjobs.job_runs r where r.job_id = v_id order by r.attempt desc limit 1;
      if not found then
        outcome := 'absent';
      elsif p_payload is null and last.payload is null then
        outcome := 'payload_not_kept';
      else
        added := graphile_worker.add_job(identifier => last.task, payload => coalesce(p_payload, last.payload),
                                         queue_name => last.queue);
        outcome := 'enqueued_again';
        new_job_id := added.id;
      end if;
    end if;
    outcomes := outcomes || jsonb_build_object(v_id::text, coalesce(new_job_id::text, outcome));
    return next;
  end loop;
  insert into pgjobs.dashboard_actions (actor, remote_addr, action, job_ids, detail, outcome)
  values (p_actor, p_remote_addr, p_action, coalesce(p_job_ids, '{}'), coalesce(p_detail, '{}'), outcomes);
end;
$$;

-- Cancel: removes jobs not held by a worker, as `pgjobs cancel` does (history records each one
-- cancelled). Returns each job's outcome: cancelled, running, not_in_queue.
create function pgjobs.dashboard_cancel(
  p_job_ids bigint[], p_actor text, p_remote_addr text, p_action text, p_detail jsonb
) returns table (job_id bigint, outcome text)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  removed bigint[];
  outcomes jsonb;
begin
  if p_action not in ('cancel', 'bulk_cancel') then
    raise exception 'pgjobs.dashboard_cancel: unknown action %', p_action using errcode = 'invalid_parameter_value';
  end if;
  -- The history trigger records removals made under this name as cancelled, even of a job with
  -- no attempts left. One statement: the trigger records the batch at once.
  perform set_config('pgjobs.action', 'pgjobs cancel', true);
  with gone as (
    delete from graphile_worker._private_jobs j
     where j.id = any(p_job_ids) and j.locked_by is null
    returning j.id
  )
  select coalesce(array_agg(gone.id), '{}') into removed from gone;
  perform set_config('pgjobs.action', '', true);

  return query
  select ids.id,
         case when ids.id = any(removed) then 'cancelled'
              when exists (select 1 from graphile_worker._private_jobs j where j.id = ids.id) then 'running'
              else 'not_in_queue' end
    from unnest(coalesce(p_job_ids, '{}')) with ordinality as ids(id, n)
   order by ids.n;

  select coalesce(jsonb_object_agg(ids.id::text,
           case when ids.id = any(removed) then 'cancelled'
                when exists (select 1 from graphile_worker._private_jobs j where j.id = ids.id) then 'running'
                else 'not_in_queue' end), '{}')
    into outcomes
    from unnest(coalesce(p_job_ids, '{}')) as ids(id);
  insert into pgjobs.dashboard_actions (actor, remote_addr, action, job_ids, detail, outcome)
  values (p_actor, p_remote_addr, p_action, coalesce(p_job_ids, '{}'), coalesce(p_detail, '{}'), outcomes);
end;
$$;

-- Run now: enqueues a task (a crontab item's, with its payload and options) to run at once.
create function pgjobs.dashboard_run_now(
  p_task text, p_payload json, p_queue text, p_max_attempts integer, p_priority integer, p_actor text,
  p_remote_addr text, p_detail jsonb
) returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  added graphile_worker._private_jobs;
begin
  added := graphile_worker.add_job(identifier => p_task, payload => p_payload, queue_name => p_queue,
                                   max_attempts => p_max_attempts, priority => p_priority);
  insert into pgjobs.dashboard_actions (actor, remote_addr, action, job_ids, detail, outcome)
  values (p_actor, p_remote_addr, 'run_now', array[added.id], coalesce(p_detail, '{}'),
          jsonb_build_object('job_id', added.id));
  return added.id;
end;
$$;

-- ── Privileges ───────────────────────────────────────────────────────────────────────────
revoke all on table pgjobs.dashboard_actions from public;
revoke all on table pgjobs.dashboard_minutes, pgjobs.dashboard_hours, pgjobs.dashboard_durations,
  pgjobs.dashboard_rollup from public;
revoke all on function pgjobs.dashboard_roll_up() from public;
revoke all on function pgjobs.live_job_state(graphile_worker._private_jobs, text, timestamptz) from public;
revoke all on function pgjobs.dashboard_jobs(text, text, text, timestamptz, timestamptz, bigint, integer) from public;
revoke all on function pgjobs.dashboard_job(bigint) from public;
revoke all on function pgjobs.queue_counts() from public;
revoke all on function pgjobs.cron_status() from public;
revoke all on function pgjobs.dashboard_retry(bigint[], json, text, text, text, jsonb) from public;
revoke all on function pgjobs.dashboard_cancel(bigint[], text, text, text, jsonb) from public;
revoke all on function pgjobs.dashboard_run_now(text, json, text, integer, integer, text, text, jsonb) from public;
do $$
declare
  app_role text;
begin
  foreach app_role in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = app_role) then
      execute format('revoke all on table pgjobs.dashboard_actions, pgjobs.dashboard_minutes, pgjobs.dashboard_hours, '
                     'pgjobs.dashboard_durations, pgjobs.dashboard_rollup from %I', app_role);
      execute format('revoke all on all functions in schema pgjobs from %I', app_role);
    end if;
  end loop;
end;
$$;
