-- pgjobs.finish_attempts, which records every failure, every transactional success and every
-- success with a result, looked up attempt notes for each attempt: a SQL function call per row
-- (~38 µs, a third of the statement), for notes that exist only while a job's key is replaced or
-- removed under a running body. As the engine's completion trigger already does, it now asks
-- once per statement whether any note exists. Otherwise 0004's function, unchanged.
create or replace function pgjobs.finish_attempts(p_worker text, p_runs json)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  has_notes boolean := exists (select 1 from pgjobs.attempt_notes);
begin
  insert into pgjobs.job_runs (job_id, task, queue, payload, payload_truncated, payload_bytes, revision, attempt,
                               max_attempts, state, will_retry, result, error_message, error_stack, note, worker_id,
                               started_at, finished_at)
  select j.id, f.task, f.queue, f.payload, f.payload_truncated, f.payload_bytes, j.revision, f.next_attempt,
         j.max_attempts, x.state, x.will_retry, x.result, x.error_message, x.error_stack,
         nullif(concat_ws('; ', x.note, case when has_notes then pgjobs.attempt_note(j.id, j.locked_at) end), ''),
         p_worker,
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
