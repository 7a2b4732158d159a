-- Attempts pgjobs can vouch for, and workers it can see die.
--
-- Until now history was inferred from graphile-worker's private writes: its `attempts` counter
-- (which job_key replacement and reschedule_jobs reset), its locks (which the local queue takes
-- for jobs that never start) and payload casts to jsonb inside its own statements (which a NUL
-- in a payload turned into a stopped engine). History now rests on what pgjobs knows:
--
--   * Workers register in pgjobs.workers and keep there, with their heartbeat, the jobs whose
--     task bodies they run (pgjobs.record_running, written in the background as bodies start).
--     A job fetched into the local queue but not started is not in that set.
--   * An attempt's row is written once, when it ends: by the runner when it knows more than the
--     engine (result, error and stack, the precise state), else by triggers in the engine's own
--     statement (completion, failure, cleared lock). "The row of this lock" is the job's row
--     started at or after the lock was taken; the engine's statement writes one only if the
--     runner did not.
--   * Attempts are numbered by pgjobs (job_runs.attempt = the job's rows so far + 1), which
--     graphile-worker's resets of `attempts` (job_key replace, reschedule_jobs) never touch.
--   * Any live worker reaps a worker silent past the liveness bound: attempts it had started
--     end `abandoned`, prefetched jobs go back as if never taken.
--   * Triggers on graphile-worker's table never cast or parse a payload and never raise: the
--     engine's statement must not fail because of what a job carries.
--   * The functions on the hot path run with seq scans, hash and merge joins off: each of their
--     statements looks rows up by key for a batch of jobs, and PL/pgSQL keeps the plan it made
--     when job_runs was small (a fresh install, or stale statistics) - measured, a merge join
--     over the whole history in every completion statement, quadratic in jobs run.

-- ── Workers ──────────────────────────────────────────────────────────────────────────────
create table pgjobs.workers (
  -- graphile-worker's pool id: what its jobs carry in locked_by.
  id text primary key,
  host text not null,
  pid integer not null,
  version text not null,
  concurrency integer not null,
  tasks text[] not null,
  state text not null default 'running' check (state in ('running', 'stopping', 'stopped', 'lost')),
  started_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  stopped_at timestamptz,
  stop_reason text,
  -- The jobs whose task bodies run on this worker: the i-th job, the lock it ran under (its
  -- locked_at) and when its body started. Parallel arrays: one small row rewritten in place.
  running_job_ids bigint[] not null default '{}',
  running_locked_at timestamptz[] not null default '{}',
  running_started_at timestamptz[] not null default '{}'
);

comment on table pgjobs.workers is 'pgjobs worker processes: heartbeat, state, why each stopped, and the task bodies each runs.';

-- The reaper and "what does worker X run" look up jobs by their lock holder.
create index pgjobs_jobs_locked_by on graphile_worker._private_jobs (locked_by) where locked_by is not null;

-- When the task body of a job started under this lock, if its worker said it did: null when the
-- worker has not reported it (yet), or holds no such lock.
create function pgjobs.body_started_at(p_worker text, p_job_id bigint, p_locked_at timestamptz)
returns timestamptz
language sql stable
as $$
  select case when w.running_locked_at[array_position(w.running_job_ids, p_job_id)] = p_locked_at
              then w.running_started_at[array_position(w.running_job_ids, p_job_id)] end
    from pgjobs.workers w
   where w.id = p_worker;
$$;

-- ── Job history, reshaped ────────────────────────────────────────────────────────────────
drop view pgjobs.runs;
drop view pgjobs.job_status;

-- json, not jsonb: graphile-worker stores payloads as json, which holds what jsonb refuses
-- (\u0000, lone surrogates); history copies them as they are and never converts them.
alter table pgjobs.job_runs
  alter column payload type json using payload::json,
  alter column result type json using result::json,
  -- Payloads over the task's cap are not copied into history (payload is null then).
  add column payload_truncated boolean not null default false,
  add column payload_bytes integer,
  -- graphile-worker's revision of the job when the attempt ran: a success counts as "already
  -- done" for a rerun only if the job was not replaced with new work since.
  add column revision integer;

alter table pgjobs.job_runs drop constraint job_runs_state_check;
alter table pgjobs.job_runs add constraint job_runs_state_check check (
  state in ('running', 'succeeded', 'failed', 'rejected', 'timed_out', 'abandoned',
            -- a job that left or ended without running (started_at is null)
            'cancelled', 'marked_complete', 'marked_failed')
);

-- Every finished attempt inserts a row here inside the engine's own completion statement, so
-- each index is paid for by every job. Rows arrive in finished_at order: a BRIN index serves
-- time windows and retention at a fraction of a btree's upkeep.
drop index pgjobs.job_runs_finished;
create index job_runs_finished on pgjobs.job_runs using brin (finished_at) with (autosummarize = on);

comment on column pgjobs.job_runs.attempt is 'pgjobs'' count of the job''s attempts (1, 2, …); graphile-worker''s resets of attempts do not touch it.';
comment on column pgjobs.job_runs.worker_id is 'The worker (pgjobs.workers.id, graphile-worker''s pool id) that ran the attempt.';

-- What a history row copies from a job: task, queue, the payload (as json, never converted;
-- left out over 64 KiB), the attempt number it takes, and when the job's latest recorded attempt
-- started (at or after the job's lock was taken: this lock's attempt is recorded already). The
-- one place that does; inlined into the statements that use it (SQL, no SET clause), so it
-- costs one index probe of job_runs per row and no call.
create function pgjobs.history_facts(j graphile_worker._private_jobs)
returns table (task text, queue text, payload json, payload_truncated boolean, payload_bytes integer,
               next_attempt integer, last_started_at timestamptz)
language sql stable
as $$
  select t.identifier, q.queue_name,
         case when size.bytes <= 65536 then j.payload end, size.bytes > 65536, size.bytes,
         coalesce(prior.last_attempt, 0) + 1, prior.last_started_at
    from graphile_worker._private_tasks t
    cross join lateral (select octet_length(j.payload::text) as bytes) size
    cross join lateral (select max(p.attempt) as last_attempt, max(p.started_at) as last_started_at
                          from pgjobs.job_runs p where p.job_id = j.id) prior
    left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
   where t.id = j.task_id;
$$;

-- What happened to a job while its task body ran (its job key replaced or removed), kept until
-- the attempt's row is written, which carries it. Keyed by the lock the attempt ran under.
create table pgjobs.attempt_notes (
  job_id bigint not null,
  locked_at timestamptz not null,
  note text not null,
  noted_at timestamptz not null default now()
);
create index attempt_notes_job on pgjobs.attempt_notes (job_id, locked_at);

comment on table pgjobs.attempt_notes is 'Notes for attempts still running, joined into their history row when it is written.';

-- The notes for the attempt a job runs under this lock, joined, or null.
create function pgjobs.attempt_note(p_job_id bigint, p_locked_at timestamptz) returns text
language sql stable
as $$
  select string_agg(n.note, '; ' order by n.noted_at)
    from pgjobs.attempt_notes n
   where n.job_id = p_job_id and n.locked_at = p_locked_at;
$$;

-- ── Who is changing the queue ────────────────────────────────────────────────────────────
-- History notes say which action ended or removed a job. pgjobs' own actions set the
-- transaction-local setting pgjobs.action; graphile-worker's SQL functions called by a person
-- are recognised in the statement that called them.
create function pgjobs.engine_action() returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(
    nullif(current_setting('pgjobs.action', true), ''),
    case
      when q like '%complete_jobs%' then 'graphile_worker.complete_jobs'
      when q like '%permanently_fail_jobs%' then 'graphile_worker.permanently_fail_jobs'
      when q like '%reschedule_jobs%' then 'graphile_worker.reschedule_jobs'
      when q like '%force_unlock_workers%' then 'graphile_worker.force_unlock_workers'
      when q like '%remove_job%' then 'graphile_worker.remove_job'
      when q like '%add_job%' then 'graphile_worker.add_job'
      else 'a statement on graphile_worker''s jobs table'
    end)
  from (select lower(left(current_query(), 4000)) as q) s;
$$;

-- ── Waiting for results ──────────────────────────────────────────────────────────────────
-- Who waits for which job's result (waitForResult registers here before it LISTENs). The
-- triggers notify only about jobs someone waits for: a NOTIFY holds a cluster-wide lock from its
-- transaction's commit until the commit is flushed, so a NOTIFY in every completion statement
-- would make all completions wait for each other's disk flush.
create table pgjobs.result_waiters (
  id bigint generated always as identity primary key,
  job_id bigint not null,
  since timestamptz not null default now()
);
create index result_waiters_job_id on pgjobs.result_waiters (job_id);

comment on table pgjobs.result_waiters is 'Jobs whose results someone awaits (waitForResult); finishing one sends a NOTIFY.';

-- Wakes waitForResult() listeners of these jobs, if any: one notification per engine statement,
-- listing job ids (comma-separated, under NOTIFY's 8000-byte payload limit).
create or replace function pgjobs.notify_finished(job_ids bigint[]) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if not exists (select 1 from pgjobs.result_waiters) then
    return;
  end if;
  perform pg_notify('pgjobs_job_finished', string_agg(id::text, ','))
     from (select id, (row_number() over ()) / 400 as chunk
             from unnest(job_ids) as id
            where exists (select 1 from pgjobs.result_waiters w where w.job_id = id)) ids
    group by chunk;
end;
$$;

-- ── Written by the runner ────────────────────────────────────────────────────────────────
-- The task bodies running on p_worker now (the runner's whole set, rewritten as bodies start):
-- jobs it no longer holds drop out; a job keeps the start time it was first reported with under
-- the same lock. Also a heartbeat. Written without waiting for the disk flush (the set is
-- rewritten within moments anyway, and a PostgreSQL crash ends every lock with it).
create function pgjobs.record_running(p_worker text, p_job_ids bigint[]) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
as $$
begin
  perform set_config('synchronous_commit', 'off', true);
  update pgjobs.workers w
     set (running_job_ids, running_locked_at, running_started_at) = (
           select coalesce(array_agg(j.id order by j.id), '{}'),
                  coalesce(array_agg(j.locked_at order by j.id), '{}'),
                  coalesce(array_agg(coalesce(
                    case when w.running_locked_at[array_position(w.running_job_ids, j.id)] = j.locked_at
                         then w.running_started_at[array_position(w.running_job_ids, j.id)] end,
                    clock_timestamp()) order by j.id), '{}')
             from graphile_worker._private_jobs j
            where j.id = any(p_job_ids) and j.locked_by = p_worker),
         last_seen_at = now()
   where w.id = p_worker and w.state in ('running', 'stopping');
end;
$$;

-- Records attempts the runner saw end, with what only it knows (result, error and stack, the
-- precise state), while their jobs are still locked by p_worker: the engine's completion or
-- failure of the job, moments later, finds the row and leaves it. Each element of p_runs:
-- job_id, state, result, error_message, error_stack, note, will_retry, and ran_ms (how long the
-- body ran, by the runner's clock). A rejected job is also left with no attempts left.
create function pgjobs.finish_attempts(p_worker text, p_runs json)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
as $$
begin
  insert into pgjobs.job_runs (job_id, task, queue, payload, payload_truncated, payload_bytes, revision, attempt,
                               max_attempts, state, will_retry, result, error_message, error_stack, note, worker_id,
                               started_at, finished_at)
  select j.id, f.task, f.queue, f.payload, f.payload_truncated, f.payload_bytes, j.revision, f.next_attempt,
         j.max_attempts, x.state, x.will_retry, x.result, x.error_message, x.error_stack,
         nullif(concat_ws('; ', x.note, pgjobs.attempt_note(j.id, j.locked_at)), ''), p_worker,
         greatest(j.locked_at, clock_timestamp() - make_interval(secs => x.ran_ms / 1000.0)), clock_timestamp()
    from json_to_recordset(p_runs) as x(job_id bigint, state text, result json, error_message text, error_stack text,
                                         note text, will_retry boolean, ran_ms float8)
    join graphile_worker._private_jobs j on j.id = x.job_id and j.locked_by = p_worker
    cross join lateral pgjobs.history_facts(j) f
  on conflict (job_id, attempt) do nothing;
  update graphile_worker._private_jobs j
     set max_attempts = greatest(j.attempts, 1)
    from json_to_recordset(p_runs) as x(job_id bigint, state text)
   where x.state = 'rejected' and j.id = x.job_id and j.locked_by = p_worker;
end;
$$;

-- Whether p_worker still holds the job's lock: checked before a worker that may have been
-- reaped while away completes a job (graphile-worker completes by id, whoever holds it).
create function pgjobs.holds_job(p_worker text, p_job_id bigint) returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select exists (select 1 from graphile_worker._private_jobs j where j.id = p_job_id and j.locked_by = p_worker);
$$;

-- ── Ending attempts: triggers on graphile-worker's jobs table ────────────────────────────
-- A job leaves the table. Locked: a worker completed it, so its attempt succeeded, recorded
-- here unless the runner recorded it (with its result). complete_jobs on a lock over 4 hours old
-- is an operator marking it done: the attempt that held the lock was lost. Not locked: a person
-- or the app removed it before it completed.
create or replace function pgjobs.record_job_deletes() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  action text := '';
  finished bigint[];
  has_notes boolean := exists (select 1 from pgjobs.attempt_notes);
begin
  -- Only removals by a person (of an unlocked job, or of one locked for over 4 hours) need to
  -- know who removed it; a worker's completion, the hot path, skips this.
  if exists (select 1 from old_jobs o where o.locked_by is null or o.locked_at < now() - interval '4 hours') then
    action := pgjobs.engine_action();
  end if;

  -- Completions: one insert per job, in the engine's own statement, unless the runner already
  -- recorded the attempt (with its result). A lock over 4 hours old removed by an operator's
  -- function was not a completion: the attempt that held it was lost.
  insert into pgjobs.job_runs (job_id, task, queue, payload, payload_truncated, payload_bytes, revision, attempt,
                               max_attempts, state, note, worker_id, started_at, finished_at)
  select o.id, f.task, f.queue, f.payload, f.payload_truncated, f.payload_bytes, o.revision, f.next_attempt,
         o.max_attempts,
         case when removal.by_operator then 'abandoned' else 'succeeded' end,
         nullif(concat_ws('; ',
           case when removal.by_operator
                then 'its worker ' || o.locked_by || ' held the lock for over 4 hours; then ' || action || ' removed the job'
                when w.id is null then 'completed by ' || o.locked_by || ', which is not a pgjobs worker' end,
           notes.note), ''),
         o.locked_by,
         coalesce(case when w.running_locked_at[array_position(w.running_job_ids, o.id)] = o.locked_at
                       then w.running_started_at[array_position(w.running_job_ids, o.id)] end,
                  o.locked_at),
         clock_timestamp()
    from old_jobs o
    cross join lateral (select o.locked_at < now() - interval '4 hours'
                               and action in ('graphile_worker.complete_jobs', 'graphile_worker.remove_job')
                               as by_operator) removal
    left join pgjobs.workers w on w.id = o.locked_by
    -- Notes exist only for jobs changed while they ran: no probe at all when there are none.
    cross join lateral (select case when has_notes then pgjobs.attempt_note(o.id, o.locked_at) end as note) notes
    cross join lateral pgjobs.history_facts(o) f
   where o.locked_by is not null
     and not coalesce(f.last_started_at >= o.locked_at, false)
  on conflict (job_id, attempt) do nothing;

  if action <> '' then
    -- Removed without completing: recorded as what the remover did. A job with no attempts left
    -- removed by a plain DELETE (graphile-worker's cleanup of failed jobs) keeps its recorded end.
    insert into pgjobs.job_runs (job_id, task, queue, payload, payload_truncated, payload_bytes, revision, attempt,
                                 max_attempts, state, note, finished_at)
    select o.id, f.task, f.queue, f.payload, f.payload_truncated, f.payload_bytes, o.revision, f.next_attempt,
           o.max_attempts,
           case when action = 'graphile_worker.complete_jobs' then 'marked_complete' else 'cancelled' end,
           case when action = 'graphile_worker.complete_jobs'
                then 'marked complete by graphile_worker.complete_jobs; the task did not run'
                else 'removed from the queue by ' || action || ' before it completed' end,
           clock_timestamp()
      from old_jobs o
      cross join lateral pgjobs.history_facts(o) f
     where (o.locked_by is null
            or (o.locked_at < now() - interval '4 hours'
                and action in ('graphile_worker.complete_jobs', 'graphile_worker.remove_job')))
       and (o.attempts < o.max_attempts
            or action in ('graphile_worker.complete_jobs', 'graphile_worker.remove_job', 'pgjobs cancel'))
    on conflict (job_id, attempt) do nothing;
  end if;

  -- Nobody waits for most jobs: skip even the call then (this runs in every completion).
  if exists (select 1 from pgjobs.result_waiters) then
    select array_agg(o.id) into finished from old_jobs o;
    perform pgjobs.notify_finished(finished);
  end if;
  return null;
end;
$$;

-- An attempt ends without completing, or a job's fate changes under it. Called only for rows
-- that were locked, or that just ran out of attempts while waiting (the WHEN clause below keeps
-- graphile-worker's fetches, the hot path, from calling it at all).
create or replace function pgjobs.record_job_updates() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  recorded boolean;
  worker pgjobs.workers;
  started timestamptz;
  action text;
begin
  if old.locked_by is null then
    -- Out of attempts while waiting: permanently_fail_jobs (or reschedule_jobs setting attempts).
    -- The last attempt, if any, will not be retried after all.
    action := pgjobs.engine_action();
    update pgjobs.job_runs r
       set will_retry = false,
           note = concat_ws('; ', r.note, 'then marked permanently failed by ' || action || coalesce(': ' || new.last_error, ''))
     where r.id = (select max(p.id) from pgjobs.job_runs p where p.job_id = new.id);
    if not found then
      insert into pgjobs.job_runs (job_id, task, queue, payload, payload_truncated, payload_bytes, revision, attempt,
                                   max_attempts, state, error_message, note, finished_at)
      select new.id, f.task, f.queue, f.payload, f.payload_truncated, f.payload_bytes, new.revision, f.next_attempt,
             new.max_attempts, 'marked_failed', new.last_error,
             'marked permanently failed by ' || action || ' before it ran', clock_timestamp()
        from pgjobs.history_facts(new) f
      on conflict (job_id, attempt) do nothing;
    end if;
    perform pgjobs.notify_finished(array[new.id]);
    return null;
  end if;

  -- The row of this lock, if the runner (or an earlier trigger) already wrote it.
  recorded := exists (select 1 from pgjobs.job_runs p where p.job_id = new.id and p.started_at >= old.locked_at);
  select * into worker from pgjobs.workers w where w.id = old.locked_by;
  started := case when worker.running_locked_at[array_position(worker.running_job_ids, old.id)] = old.locked_at
                  then worker.running_started_at[array_position(worker.running_job_ids, old.id)] end;

  if new.locked_by is not null then
    -- Still locked: the attempt runs on to its real end, unless an operator acting on a lock
    -- over 4 hours old (permanently_fail_jobs, reschedule_jobs) gives up on it.
    if old.key is not null and new.key is null then
      -- job_key replaced (add_job) or removed (remove_job) while the body runs: it runs on to its
      -- real end, and this job will not run again. Its row, when written, says so.
      insert into pgjobs.attempt_notes (job_id, locked_at, note)
      values (new.id, old.locked_at,
              'while it ran, ' || pgjobs.engine_action() || ' detached its job key ' || old.key
              || '; this job will not run again');
    end if;
    if old.locked_at < now() - interval '4 hours' and not recorded
       and (new.attempts <> old.attempts or new.run_at <> old.run_at or new.max_attempts <> old.max_attempts) then
      action := pgjobs.engine_action();
      insert into pgjobs.job_runs (job_id, task, queue, payload, payload_truncated, payload_bytes, revision, attempt,
                                   max_attempts, state, will_retry, note, worker_id, started_at, finished_at)
      select new.id, f.task, f.queue, f.payload, f.payload_truncated, f.payload_bytes, old.revision, f.next_attempt,
             new.max_attempts, 'abandoned', new.attempts < new.max_attempts,
             'its worker ' || old.locked_by || ' held the lock for over 4 hours; then ' || action || ' changed the job',
             old.locked_by, coalesce(started, old.locked_at), clock_timestamp()
        from pgjobs.history_facts(old) f
      on conflict (job_id, attempt) do nothing;
    end if;
    return null;
  end if;

  -- Unlocked.
  if new.attempts < old.attempts then
    -- Handed back unstarted (graceful stop, local queue TTL, the reaper): no attempt ran.
    return null;
  end if;

  if new.run_at > greatest(old.run_at, now()) then
    -- Failed: graphile-worker moves run_at past both now and the old run_at (its backoff is at
    -- least a second); its stale-lock sweep and force_unlock_workers never do. The runner usually recorded the
    -- precise end already (stack, timed_out, rejected); whether it retries is the engine's to say.
    if recorded then
      update pgjobs.job_runs r
         set will_retry = r.will_retry and new.attempts < new.max_attempts
       where r.job_id = new.id and r.started_at >= old.locked_at and r.state in ('failed', 'rejected', 'timed_out');
    else
      insert into pgjobs.job_runs (job_id, task, queue, payload, payload_truncated, payload_bytes, revision, attempt,
                                   max_attempts, state, will_retry, error_message, note, worker_id, started_at,
                                   finished_at)
      select new.id, f.task, f.queue, f.payload, f.payload_truncated, f.payload_bytes, old.revision, f.next_attempt,
             new.max_attempts, 'failed', new.attempts < new.max_attempts, new.last_error,
             nullif(concat_ws('; ', case when worker.id is null
                                         then 'failed on ' || old.locked_by || ', which is not a pgjobs worker' end,
                              pgjobs.attempt_note(new.id, old.locked_at)), ''),
             old.locked_by, coalesce(started, old.locked_at), clock_timestamp()
        from pgjobs.history_facts(old) f
      on conflict (job_id, attempt) do nothing;
    end if;
    if new.attempts >= new.max_attempts then
      perform pgjobs.notify_finished(array[new.id]);
    end if;
    return null;
  end if;

  -- The lock was cleared without a failure: force_unlock_workers, the stale-lock sweep, or the
  -- reaper. An attempt that had started under it was lost with its worker. A pgjobs worker said
  -- which ones had started; of another worker's jobs that cannot be known, so they are recorded.
  if not recorded and (started is not null or worker.id is null) then
    action := pgjobs.engine_action();
    insert into pgjobs.job_runs (job_id, task, queue, payload, payload_truncated, payload_bytes, revision, attempt,
                                 max_attempts, state, will_retry, note, worker_id, started_at, finished_at)
    select new.id, f.task, f.queue, f.payload, f.payload_truncated, f.payload_bytes, old.revision, f.next_attempt,
           new.max_attempts, 'abandoned', new.attempts < new.max_attempts,
           case when worker.id is null
                then 'its worker ' || old.locked_by || ' is not a pgjobs worker (whether the task started is unknown); lock cleared by ' || action
                else 'its worker ' || old.locked_by || ' stopped without reporting; lock cleared by ' || action end,
           old.locked_by, coalesce(started, old.locked_at), clock_timestamp()
      from pgjobs.history_facts(old) f
    on conflict (job_id, attempt) do nothing;
  end if;
  return null;
end;
$$;

drop trigger pgjobs_record_job_updates on graphile_worker._private_jobs;
create trigger pgjobs_record_job_updates
  after update on graphile_worker._private_jobs
  for each row
  when (old.locked_by is not null
        or (new.locked_by is null and new.attempts >= new.max_attempts and old.attempts < old.max_attempts))
  execute function pgjobs.record_job_updates();

-- The runner's old writer; pgjobs.finish_attempts replaces it.
drop function pgjobs.finish_run(bigint, integer, text, jsonb, text, text, text, boolean);

-- ── Liveness ─────────────────────────────────────────────────────────────────────────────
create function pgjobs.register_worker(p_id text, p_host text, p_pid integer, p_version text, p_concurrency integer,
                                       p_tasks text[])
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  insert into pgjobs.workers (id, host, pid, version, concurrency, tasks)
  values (p_id, p_host, p_pid, p_version, p_concurrency, p_tasks)
  on conflict (id) do update
     set host = excluded.host, pid = excluded.pid, version = excluded.version, concurrency = excluded.concurrency,
         tasks = excluded.tasks, state = 'running', last_seen_at = now(), stopped_at = null, stop_reason = null;
$$;

-- Unlocks a worker's jobs: those whose task body had started (it said so, or already recorded
-- their end) keep the attempt and the update trigger records the loss; prefetched ones go back
-- with the attempt they were charged returned.
create function pgjobs.release_worker_jobs(p_worker text, p_why text)
returns table (abandoned integer, returned integer)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  started_count integer;
  total_count integer;
begin
  perform set_config('pgjobs.action', p_why, true);
  with held as (
    select k.id,
           pgjobs.body_started_at(p_worker, k.id, k.locked_at) is not null
           or exists (select 1 from pgjobs.job_runs r where r.job_id = k.id and r.started_at >= k.locked_at) as started
      from graphile_worker._private_jobs k
     where k.locked_by = p_worker
  ), released as (
    update graphile_worker._private_jobs j
       set locked_by = null, locked_at = null,
           attempts = case when held.started then j.attempts else greatest(j.attempts - 1, 0) end
      from held
     where j.id = held.id and j.locked_by = p_worker
    returning held.started
  )
  select count(*) filter (where started), count(*) into started_count, total_count from released;
  update graphile_worker._private_job_queues q set locked_by = null, locked_at = null where q.locked_by = p_worker;
  update pgjobs.workers w
     set running_job_ids = '{}', running_locked_at = '{}', running_started_at = '{}'
   where w.id = p_worker;
  perform set_config('pgjobs.action', '', true);
  return query select started_count, total_count - started_count;
end;
$$;

-- One call per heartbeat: says this worker is alive, then reaps the workers silent for longer
-- than p_silence. Returns this worker's own state (lost: it was reaped while away) and one row
-- per worker it reaped. Workers never seen alive (plain graphile-worker processes) are never
-- reaped: only rows in pgjobs.workers are.
create function pgjobs.heartbeat(p_worker text, p_silence interval)
returns table (worker_id text, state text, host text, pid integer, silent_for interval, abandoned integer,
               returned integer)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  me pgjobs.workers;
  dead pgjobs.workers;
  released record;
begin
  update pgjobs.workers w set last_seen_at = now()
   where w.id = p_worker and w.state in ('running', 'stopping')
  returning * into me;
  if not found then
    select * into me from pgjobs.workers w where w.id = p_worker;
    return query select p_worker, coalesce(me.state, 'lost'), me.host, me.pid, now() - me.last_seen_at, 0, 0;
    return;
  end if;
  return query select me.id, me.state, me.host, me.pid, interval '0', 0, 0;

  for dead in
    select * from pgjobs.workers w
     where w.state in ('running', 'stopping') and w.last_seen_at < now() - p_silence and w.id <> p_worker
       for update skip locked
  loop
    update pgjobs.workers w
       set state = 'lost', stopped_at = now(),
           stop_reason = format('no heartbeat for %s; reaped by worker %s', date_trunc('second', now() - dead.last_seen_at), p_worker)
     where w.id = dead.id;
    select * into released from pgjobs.release_worker_jobs(
      dead.id, format('the reaper (worker %s on %s, pid %s, silent since %s)', dead.id, dead.host, dead.pid,
                      to_char(dead.last_seen_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"')));
    return query select dead.id, 'lost'::text, dead.host, dead.pid, now() - dead.last_seen_at, released.abandoned,
                        released.returned;
  end loop;

  -- Stopped and lost workers stay visible for a week; waiters of a waitForResult that died too.
  delete from pgjobs.workers w where w.state in ('stopped', 'lost') and w.stopped_at < now() - interval '7 days';
  delete from pgjobs.result_waiters r where r.since < now() - interval '1 day';
  delete from pgjobs.attempt_notes n where n.noted_at < now() - interval '7 days';
  -- Task names no service has registered for 30 days and no running worker runs: SQL may no
  -- longer enqueue them (services sharing the database only ever add their own).
  delete from pgjobs.task_registry r
   where r.updated_at < now() - interval '30 days'
     and not exists (select 1 from pgjobs.workers w where w.state in ('running', 'stopping') and r.task = any(w.tasks));
end;
$$;

-- A worker stopping by force fails the jobs whose bodies it runs, as graphile-worker fails a job
-- (backoff, last_error): they are retried later, and the update trigger records the failure.
-- Done first and in one statement, before anything that can wait on the engine.
create function pgjobs.fail_running_jobs(p_worker text, p_job_ids bigint[], p_message text)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  failed integer;
begin
  with j as (
    update graphile_worker._private_jobs j
       set last_error = p_message,
           run_at = greatest(now(), j.run_at) + exp(least(j.attempts, 10)) * interval '1 second',
           locked_by = null, locked_at = null
     where j.id = any(p_job_ids) and j.locked_by = p_worker
    returning j.job_queue_id
  ), q as (
    update graphile_worker._private_job_queues q set locked_by = null, locked_at = null
      from j where q.id = j.job_queue_id and q.locked_by = p_worker
  )
  select count(*) into failed from j;
  return failed;
end;
$$;

-- A worker that begins a graceful stop says so (it keeps heartbeating until it is done).
create function pgjobs.worker_stopping(p_worker text) returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update pgjobs.workers w set state = 'stopping' where w.id = p_worker and w.state = 'running';
$$;

-- A worker that stops on purpose says so, and hands back anything it still holds.
create function pgjobs.stop_worker(p_worker text, p_reason text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform pgjobs.release_worker_jobs(p_worker, format('worker %s stopping (%s)', p_worker, p_reason));
  update pgjobs.workers w set state = 'stopped', stopped_at = now(), stop_reason = p_reason, last_seen_at = now()
   where w.id = p_worker;
end;
$$;

-- ── Operator actions ─────────────────────────────────────────────────────────────────────
-- `pgjobs cancel`: removes a job that is not running; history records it cancelled (even one
-- with no attempts left, which a plain DELETE, graphile-worker's cleanup, leaves as it ended).
-- Returns cancelled, running (it cannot be cancelled mid-run) or absent.
create function pgjobs.cancel_job(p_job_id bigint) returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  outcome text := 'cancelled';
begin
  perform set_config('pgjobs.action', 'pgjobs cancel', true);
  delete from graphile_worker._private_jobs j where j.id = p_job_id and j.locked_by is null;
  if not found then
    outcome := case when exists (select 1 from graphile_worker._private_jobs j where j.id = p_job_id)
                    then 'running' else 'absent' end;
  end if;
  perform set_config('pgjobs.action', '', true);
  return outcome;
end;
$$;

-- ── Task options for jobs pgjobs did not enqueue ─────────────────────────────────────────
-- The crontab, graphile_worker.add_job/add_jobs and quickAddJob insert jobs directly. A job
-- given no max_attempts (graphile-worker's 25) and no queue gets its task's own, as declared in
-- the task registry. (25 passed explicitly looks the same: pgjobs' own enqueue marks that case with
-- the job flag pgjobs:explicit_max_attempts, which this trigger removes.)
create function pgjobs.apply_task_defaults() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  defaults record;
  queue_id integer;
begin
  select r.default_max_attempts, r.default_queue into defaults
    from graphile_worker._private_tasks t
    join pgjobs.task_registry r on r.task = t.identifier
   where t.id = new.task_id;
  if new.flags ? 'pgjobs:explicit_max_attempts' then
    new.flags := nullif(new.flags - 'pgjobs:explicit_max_attempts', '{}'::jsonb);
  elsif new.max_attempts = 25 and defaults.default_max_attempts is not null then
    new.max_attempts := defaults.default_max_attempts;
  end if;
  if new.job_queue_id is null and defaults.default_queue is not null then
    select q.id into queue_id from graphile_worker._private_job_queues q where q.queue_name = defaults.default_queue;
    if not found then
      insert into graphile_worker._private_job_queues (queue_name) values (defaults.default_queue)
      on conflict (queue_name) do nothing;
      select q.id into queue_id from graphile_worker._private_job_queues q where q.queue_name = defaults.default_queue;
    end if;
    new.job_queue_id := queue_id;
  end if;
  return new;
end;
$$;

create trigger pgjobs_apply_task_defaults
  before insert on graphile_worker._private_jobs
  for each row
  when (new.max_attempts = 25 or new.job_queue_id is null or new.flags is not null)
  execute function pgjobs.apply_task_defaults();

-- ── Reading ──────────────────────────────────────────────────────────────────────────────
-- The task bodies running now, as their workers reported them (a job a worker fetched but has
-- not started is not here).
create view pgjobs.running_attempts as
select j.id as job_id, t.identifier as task, q.queue_name as queue, j.payload, j.max_attempts::integer as max_attempts,
       w.id as worker_id, s.started_at, j.revision
  from pgjobs.workers w
  cross join lateral unnest(w.running_job_ids, w.running_locked_at, w.running_started_at) as s(job_id, locked_at, started_at)
  join graphile_worker._private_jobs j on j.id = s.job_id and j.locked_by = w.id and j.locked_at = s.locked_at
  join graphile_worker._private_tasks t on t.id = j.task_id
  left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
 where w.state in ('running', 'stopping');

comment on view pgjobs.running_attempts is 'Task bodies running now, as their pgjobs workers reported them.';

-- The jobs in the queue, payload included (graphile_worker.jobs leaves it out): for the test
-- kit, the dashboard and a person at psql, without reading graphile-worker's private tables.
create view pgjobs.queued_jobs as
select j.id, t.identifier as task, q.queue_name as queue, j.payload, j.priority, j.run_at, j.attempts,
       j.max_attempts, j.last_error, j.key, j.locked_by, j.locked_at, j.created_at, j.revision
  from graphile_worker._private_jobs j
  join graphile_worker._private_tasks t on t.id = j.task_id
  left join graphile_worker._private_job_queues q on q.id = j.job_queue_id;

comment on view pgjobs.queued_jobs is 'Jobs in the queue, with their payloads.';

-- Every attempt: finished ones from pgjobs.job_runs, and the task bodies running now.
create view pgjobs.runs as
select r.id, r.job_id, r.task, r.queue, r.payload, r.payload_truncated, r.attempt, r.max_attempts, r.state,
       r.will_retry, r.result, r.error_message, r.error_stack, r.note, r.worker_id, r.started_at, r.finished_at,
       r.duration_ms
  from pgjobs.job_runs r
union all
select null, a.job_id, a.task, a.queue, null, false,
       coalesce((select max(p.attempt) from pgjobs.job_runs p where p.job_id = a.job_id), 0) + 1,
       a.max_attempts, 'running', false, null, null, null, null, a.worker_id, a.started_at, null,
       extract(epoch from (clock_timestamp() - a.started_at)) * 1000
  from pgjobs.running_attempts a;

comment on view pgjobs.runs is 'Every attempt of every job (running ones too) and how jobs left without running.';

-- "What happened to job N?" One row per job, live (in_queue) or finished. `running` means its
-- task body runs now; a job a worker has fetched but not started is `queued`.
create view pgjobs.job_status as
with latest as not materialized (
  select distinct on (job_id) *,
         -- attempts made: a row for a job that left without running holds the next number
         case when started_at is null then attempt - 1 else attempt end as attempts_made
    from pgjobs.job_runs
   order by job_id, id desc
)
select j.id as job_id,
       t.identifier as task,
       q.queue_name as queue,
       case
         when pgjobs.body_started_at(j.locked_by, j.id, j.locked_at) is not null then 'running'
         when l.state = 'succeeded' then 'succeeded'
         when j.attempts >= j.max_attempts and j.locked_by is null then
           case when l.state in ('failed', 'rejected', 'timed_out', 'abandoned', 'marked_failed') then l.state
                else 'failed' end
         when l.started_at is not null then 'retrying'
         when j.run_at > now() then 'scheduled'
         else 'queued'
       end as state,
       true as in_queue,
       coalesce(l.attempts_made, 0) as attempts,
       j.max_attempts::integer as max_attempts,
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
select l.job_id, l.task, l.queue, l.state, false, l.attempts_made, l.max_attempts, null, l.result, l.error_message,
       l.error_stack, null, l.finished_at
  from latest l
 where not exists (select 1 from graphile_worker._private_jobs j where j.id = l.job_id);

comment on view pgjobs.job_status is 'What happened to job N: one row per job, live (in_queue) or finished.';

-- Workers, how long each has been silent, and the task bodies each runs now.
create view pgjobs.worker_status as
select w.id, w.host, w.pid, w.version, w.state, w.concurrency, w.tasks, w.started_at, w.last_seen_at,
       extract(epoch from (now() - w.last_seen_at))::double precision as seconds_silent, w.stopped_at, w.stop_reason,
       coalesce(running.job_ids, '{}') as running_job_ids,
       running.since as running_since
  from pgjobs.workers w
  left join lateral (
    select array_agg(a.job_id order by a.job_id) as job_ids, min(a.started_at) as since
      from pgjobs.running_attempts a
     where a.worker_id = w.id
  ) running on true;

comment on view pgjobs.worker_status is 'pgjobs workers: heartbeat age, state, and the job ids whose task bodies run now.';

create or replace function pgjobs.task_summary(window_size interval default interval '24 hours')
returns table (
  task text, attempts bigint, succeeded bigint, failed bigint, rejected bigint, timed_out bigint,
  abandoned bigint, cancelled bigint, running bigint, success_rate numeric, p50_ms double precision,
  p95_ms double precision
)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select r.task,
         count(*) filter (where r.started_at is not null),
         count(*) filter (where r.state = 'succeeded'),
         count(*) filter (where r.state = 'failed'),
         count(*) filter (where r.state = 'rejected'),
         count(*) filter (where r.state = 'timed_out'),
         count(*) filter (where r.state = 'abandoned'),
         count(*) filter (where r.state in ('cancelled', 'marked_complete', 'marked_failed')),
         count(*) filter (where r.state = 'running'),
         round(count(*) filter (where r.state = 'succeeded')::numeric
               / nullif(count(*) filter (where r.started_at is not null and r.state <> 'running'), 0), 4),
         percentile_cont(0.5) within group (order by r.duration_ms) filter (where r.state <> 'running'),
         percentile_cont(0.95) within group (order by r.duration_ms) filter (where r.state <> 'running')
    from pgjobs.runs r
   where coalesce(r.finished_at, r.started_at) >= now() - window_size
   group by r.task
   order by r.task;
$$;


-- ── SQL enqueue refuses what the runner would reject ─────────────────────────────────────
-- Whether a JSON value nests objects and arrays deeper than max_depth levels (the top-level
-- value is level 0). Level by level, without recursion.
create function pgjobs.nests_deeper_than(p jsonb, max_depth integer) returns boolean
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
declare
  level jsonb[] := array[p];
  depth integer := 0;
begin
  loop
    select array_agg(c.child) into level
      from unnest(level) as parent(value)
      cross join lateral (
        select e.value from jsonb_array_elements(case when jsonb_typeof(parent.value) = 'array' then parent.value end) e
        union all
        select e.value from jsonb_each(case when jsonb_typeof(parent.value) = 'object' then parent.value end) e
      ) as c(child)
     where jsonb_typeof(c.child) in ('array', 'object');
    if level is null then
      return false;
    end if;
    depth := depth + 1;
    if depth >= max_depth then
      return true;
    end if;
  end loop;
end;
$$;

-- Also: the payload's depth is bounded like enqueue() bounds it in TypeScript (a NUL or a lone
-- surrogate cannot reach here: jsonb refuses them when the call's argument is parsed), and the
-- search path puts the temporary schema last.
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
    run_at => enqueue.run_at, max_attempts => coalesce(enqueue.max_attempts, task_max_attempts), job_key => enqueue.job_key,
    priority => enqueue.priority
  );
  return job.id;
end;
$$;


-- ── Privileges ───────────────────────────────────────────────────────────────────────────
revoke all on all tables in schema pgjobs from public;
revoke all on all functions in schema pgjobs from public;
do $$
declare
  app_role text;
begin
  foreach app_role in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = app_role) then
      execute format('revoke all on all tables in schema pgjobs from %I', app_role);
      execute format('revoke all on all functions in schema pgjobs from %I', app_role);
    end if;
  end loop;
end;
$$;
