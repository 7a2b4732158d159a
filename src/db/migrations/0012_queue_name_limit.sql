-- A queue name longer than graphile-worker allows (128 characters) failed every door
-- (pgjobs.enqueue, enqueue_many, add_job, TypeScript's enqueue) with PostgreSQL's own words,
-- 'new row for relation "_private_job_queues" violates check constraint
-- "job_queues_queue_name_check"', which names neither the field nor the limit. Every door creates
-- a queue the same way, the first time it sees its name: the check is made there, once, for all of
-- them (a queue is created once, so it costs nothing per job).
create function pgjobs.refuse_long_queue_name() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception 'queue name "%…" is % characters; graphile-worker allows at most 128', left(new.queue_name, 40),
    length(new.queue_name)
    using errcode = 'check_violation', hint = 'Use a shorter queue name; nothing was enqueued.';
end;
$$;

revoke all on function pgjobs.refuse_long_queue_name() from public;

create trigger pgjobs_refuse_long_queue_name
  before insert on graphile_worker._private_job_queues
  for each row
  when (length(new.queue_name) > 128)
  execute function pgjobs.refuse_long_queue_name();
