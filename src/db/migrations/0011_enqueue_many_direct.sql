-- pgjobs.enqueue_many at the engine's own pace (issue #8: bulk enqueue ≥ 0.9× add_jobs).
-- 0009's version cost ~33 µs a job where graphile_worker.add_jobs costs ~11: it built the batch
-- into an array of composites, walked it again for each check, handed it to add_jobs (whose
-- ON CONFLICT makes every insert speculative) and matched add_jobs' rows back to the batch by
-- comparing them. Now:
--   * one statement reads the JSON once: checks each job (same checks and messages as 0009; the
--     first job that fails one is named), draws its id from the jobs' sequence, and inserts the
--     jobs without a job key into the engine's table, so each returned row is its job by
--     construction, with no matching;
--   * the engine is woken as add_jobs wakes it ('jobs:insert' with the count);
--   * jobs with a job key still go through add_jobs, whose key semantics (replace, preserve
--     run_at, a running holder detached) are the engine's; a key names its job in what returns.
-- A granted caller's grants are checked before pgjobs.enqueue's checks, as before, so that a
-- caller without a grant learns nothing about the registered tasks. Same signature and results
-- as 0009.

-- What is wrong with a job's form, or null: an object with known keys of the right JSON types.
-- A plain SQL expression, so that the planner inlines it into the statements that scan a batch;
-- refuse_bulk_job turns it into words.
create function pgjobs.bulk_job_shape_problem(job jsonb) returns text
language sql
immutable
as $$
  select case
           when jsonb_typeof(job) <> 'object' then 'not_an_object'
           when job - array['task', 'payload', 'run_at', 'job_key', 'queue', 'priority', 'max_attempts'] <> '{}' then 'unknown_keys'
           when jsonb_typeof(job -> 'task') is distinct from 'string' then 'task'
           when jsonb_typeof(job -> 'run_at') not in ('string', 'null') then 'run_at'
           when jsonb_typeof(job -> 'job_key') not in ('string', 'null') then 'job_key'
           when jsonb_typeof(job -> 'queue') not in ('string', 'null') then 'queue'
           when jsonb_typeof(job -> 'priority') not in ('number', 'null')
                or (jsonb_typeof(job -> 'priority') = 'number' and (job ->> 'priority') !~ '^-?\d{1,9}$') then 'priority'
           when jsonb_typeof(job -> 'max_attempts') not in ('number', 'null')
                or (jsonb_typeof(job -> 'max_attempts') = 'number' and (job ->> 'max_attempts') !~ '^-?\d{1,9}$') then 'max_attempts'
         end
$$;

-- Refuses job `job_index` of a batch, in pgjobs.enqueue's words: `shape` from
-- bulk_job_shape_problem, else `problem`, the check it failed. Called by enqueue_many's scan on the
-- first job it finds wrong; returns only to satisfy the expression that calls it.
create function pgjobs.refuse_bulk_job(job_index bigint, job jsonb, shape text, problem text) returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  task_name text := job ->> 'task';
  payload jsonb := coalesce(job -> 'payload', '{}'::jsonb);
  cap integer;
begin
  if shape is not null then
    raise exception 'pgjobs.enqueue_many: jobs[%] %', job_index,
      case shape
        when 'not_an_object' then format('must be an object, got %s', jsonb_typeof(job))
        when 'unknown_keys' then
          format('has unknown keys (%s); a job has task, payload, run_at, job_key, queue, priority, max_attempts',
                 (select string_agg(k, ', ') from jsonb_object_keys(job) k
                   where k not in ('task', 'payload', 'run_at', 'job_key', 'queue', 'priority', 'max_attempts')))
        when 'task' then 'needs "task", the task''s name as a string'
        when 'run_at' then 'has a run_at that is not a timestamp string'
        when 'job_key' then 'has a job_key that is not a string'
        when 'queue' then 'has a queue that is not a string'
        when 'priority' then 'has a priority that is not an integer'
        else 'has a max_attempts that is not an integer'
      end
      using errcode = 'invalid_parameter_value';
  end if;
  case problem
    when 'unknown' then
      raise exception 'pgjobs.enqueue_many: jobs[%]: unknown task "%"', job_index, task_name
        using errcode = 'invalid_parameter_value',
              hint = 'Registered tasks: ' || coalesce((select string_agg(r.task, ', ' order by r.task) from pgjobs.task_registry r), 'none') || '.';
    when 'not_object' then
      raise exception 'pgjobs.enqueue_many: jobs[%]: the payload for "%" must be a JSON object, got %', job_index, task_name,
        jsonb_typeof(payload) using errcode = 'invalid_parameter_value';
    when 'too_big' then
      select r.max_payload_bytes into cap from pgjobs.task_registry r where r.task = task_name;
      raise exception 'pgjobs.enqueue_many: jobs[%]: payload for "%" is % bytes; the cap is % bytes', job_index, task_name,
        octet_length(payload::text), cap
        using errcode = 'program_limit_exceeded', hint = 'Store large data in a table and pass its id in the payload.';
    when 'too_far' then
      raise exception 'pgjobs.enqueue_many: jobs[%]: run_at % is more than a year ahead', job_index, (job ->> 'run_at')::timestamptz
        using errcode = 'invalid_parameter_value';
    when 'attempts' then
      raise exception 'pgjobs.enqueue_many: jobs[%]: max_attempts must be between 1 and 100, got %', job_index,
        job ->> 'max_attempts' using errcode = 'invalid_parameter_value';
    when 'priority' then
      raise exception 'pgjobs.enqueue_many: jobs[%]: priority must be between -1000 and 1000, got %', job_index,
        job ->> 'priority' using errcode = 'invalid_parameter_value';
    else
      raise exception 'pgjobs.enqueue_many: jobs[%]: the payload for "%" is nested deeper than 64 levels', job_index, task_name
        using errcode = 'program_limit_exceeded', hint = 'Flatten the payload.';
  end case;
end;
$$;

-- Names the first job of a batch whose run_at PostgreSQL cannot read, if there is one.
create function pgjobs.refuse_unreadable_run_at(jobs jsonb) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  job record;
begin
  for job in select e.n - 1 as i, e.job ->> 'run_at' as run_at
               from jsonb_array_elements(jobs) with ordinality as e(job, n)
              where jsonb_typeof(e.job -> 'run_at') = 'string'
              order by e.n loop
    begin
      perform job.run_at::timestamptz;
    exception when invalid_datetime_format or datetime_field_overflow or invalid_text_representation then
      raise exception 'pgjobs.enqueue_many: jobs[%] has a run_at PostgreSQL cannot read (%): %', job.i, job.run_at, sqlerrm
        using errcode = 'invalid_datetime_format';
    end;
  end loop;
end;
$$;

-- A batch's jobs as a granted caller's grant checks read them (authorize_enqueue's arguments),
-- for well-formed jobs. Inlined where it is used.
create function pgjobs.bulk_job_requests(jobs jsonb)
returns table (n bigint, task text, queue text, size integer, run_at timestamptz, job_key text, priority integer,
               max_attempts integer)
language sql
stable
as $$
  select e.n - 1, e.job ->> 'task', e.job ->> 'queue', octet_length(coalesce(e.job -> 'payload', '{}'::jsonb)::text),
         (e.job ->> 'run_at')::timestamptz, e.job ->> 'job_key', (e.job ->> 'priority')::integer,
         (e.job ->> 'max_attempts')::integer
    from jsonb_array_elements(jobs) with ordinality as e(job, n)
$$;

revoke all on function pgjobs.bulk_job_shape_problem(jsonb) from public;
revoke all on function pgjobs.bulk_job_requests(jsonb) from public;
revoke all on function pgjobs.refuse_unreadable_run_at(jsonb) from public;
revoke all on function pgjobs.refuse_bulk_job(bigint, jsonb, text, text) from public;

create or replace function pgjobs.enqueue_many(jobs jsonb, job_key_mode text default 'replace')
returns setof pgjobs.enqueued_job
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  trusted boolean := pgjobs.caller_is_trusted();
  caller text;
  bad record;
  current_job integer;
  state text;
  message text;
  detail text;
  hint text;
  keyed boolean := jsonb_path_exists(jobs, '$[*].job_key ? (@ != null)');
  names_queues boolean := jsonb_path_exists(jobs, '$[*].queue ? (@ != null)');
  direct_count integer;
  returned bigint;
  jobs_sequence regclass := pg_get_serial_sequence('graphile_worker._private_jobs', 'id');
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

  -- A granted caller: every job's form first (the grant checks read its fields), then each
  -- task's first job against its role's grant (n_jobs => 0 checks without charging, and a
  -- missing grant names that job), then the task's count charged once, so the per-minute limits
  -- count every job and a batch over them is refused before any per-job work (a flood of large
  -- batches costs the caller's grant check, not seconds each); then every job against the grant.
  -- A refusal rolls the charges back with the statement.
  if not trusted then
    perform pgjobs.refuse_bulk_job(e.n - 1, e.job, pgjobs.bulk_job_shape_problem(e.job), null)
       from jsonb_array_elements(jobs) with ordinality as e(job, n)
      where pgjobs.bulk_job_shape_problem(e.job) is not null
      order by e.n limit 1;
    current_job := null;
    begin
      for bad in select b.*, t.batched
                   from (select b.task, count(*)::integer as batched, min(b.n) as first
                           from pgjobs.bulk_job_requests(jobs) b group by b.task) t
                   join pgjobs.bulk_job_requests(jobs) b on b.task = t.task and b.n = t.first
                  order by t.first loop
        current_job := bad.n;
        perform pgjobs.authorize_enqueue(bad.task, bad.queue, bad.size, bad.run_at, bad.job_key, 0, bad.priority,
                                         bad.max_attempts);
        current_job := null;
        perform pgjobs.authorize_enqueue(bad.task, null, 0, null, null, bad.batched);
      end loop;
      for bad in select b.* from pgjobs.bulk_job_requests(jobs) b order by b.n loop
        current_job := bad.n;
        perform pgjobs.authorize_enqueue(bad.task, bad.queue, bad.size, bad.run_at, bad.job_key, 0, bad.priority,
                                         bad.max_attempts);
      end loop;
      current_job := null;
    exception
      when invalid_datetime_format or datetime_field_overflow or invalid_text_representation then
        perform pgjobs.refuse_unreadable_run_at(jobs);
        raise;
      when others then
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

  -- The tasks and queues the batch may name, made known to the engine as add_jobs would: every
  -- registered task and default queue (a few rows, and no scan of the batch), and the queues
  -- jobs name themselves. (A refused batch takes them back with it.)
  insert into graphile_worker._private_tasks (identifier)
  select r.task from pgjobs.task_registry r
   where not exists (select 1 from graphile_worker._private_tasks t where t.identifier = r.task)
  on conflict do nothing;
  insert into graphile_worker._private_job_queues (queue_name)
  select distinct q.name
    from (select r.default_queue from pgjobs.task_registry r where r.default_queue is not null
          union all
          select e.job ->> 'queue' from jsonb_array_elements(case when names_queues then jobs end) e(job)
           where e.job ->> 'queue' is not null) q(name)
   where not exists (select 1 from graphile_worker._private_job_queues e where e.queue_name = q.name)
  on conflict do nothing;

  -- One add_jobs upserts a key once: two jobs of the batch with one key would fail it obscurely.
  if keyed then
    select min(e.n) - 1 as first, max(e.n) - 1 as second, e.job ->> 'job_key' as job_key into bad
      from jsonb_array_elements(jobs) with ordinality as e(job, n)
     where e.job ->> 'job_key' is not null
     group by e.job ->> 'job_key' having count(*) > 1 order by min(e.n) limit 1;
    if found then
      raise exception 'pgjobs.enqueue_many: jobs[%] and jobs[%] have the same job_key "%"; a batch may give a key to one job only',
        bad.first, bad.second, bad.job_key using errcode = 'invalid_parameter_value';
    end if;
  end if;

  -- Every job has its task's queue and attempts from here on, so the task-defaults trigger (a
  -- PL/pgSQL call per row) is told to stand aside.
  perform set_config('pgjobs.task_defaults_applied', 'on', true);
  begin
    -- The one statement: `checked` reads and checks every job (refusing the first bad one), the
    -- jobs without a key are inserted, and those with one go to add_jobs (which runs only once
    -- every job has been checked: its argument is built from all of them).
    return query
    -- What each registered task needs, looked up once rather than per job.
    with known as materialized (
      select r.task, r.max_payload_bytes, r.default_max_attempts, r.default_queue, t.id as task_id,
             q.id as default_queue_id
        from pgjobs.task_registry r
        join graphile_worker._private_tasks t on t.identifier = r.task
        left join graphile_worker._private_job_queues q on q.queue_name = r.default_queue
    ), checked as materialized (
      select c.n, c.task, c.job_key, c.task_id, c.queue_id, c.queue_name, c.payload_text, c.run_at, c.max_attempts,
             c.default_max_attempts, c.priority, c.id
        from (select s.*,
                     case
                       when s.shape is not null then null
                       when s.task_id is null then 'unknown'
                       when jsonb_typeof(s.payload) <> 'object' then 'not_object'
                       when octet_length(s.payload_text) > s.cap then 'too_big'
                       when s.run_at > now() + interval '1 year' then 'too_far'
                       when s.max_attempts not between 1 and 100 then 'attempts'
                       when s.priority not between -1000 and 1000 then 'priority'
                       -- 65 levels take 65 opening brackets: count them before walking the tree
                       when octet_length(s.payload_text) - octet_length(replace(replace(s.payload_text, '{', ''), '[', '')) > 64
                            and pgjobs.nests_deeper_than(s.payload, 64) then 'too_deep'
                     end as problem
                from (select f.*, p.payload_text,
                             case when f.shape is null then (f.job ->> 'run_at')::timestamptz end as run_at,
                             case when f.shape is null then (f.job ->> 'max_attempts')::integer end as max_attempts,
                             case when f.shape is null then (f.job ->> 'priority')::integer end as priority
                        from (select e.n - 1 as n, e.id, e.job, pgjobs.bulk_job_shape_problem(e.job) as shape,
                                     e.job ->> 'task' as task, coalesce(e.job -> 'payload', '{}'::jsonb) as payload,
                                     e.job ->> 'job_key' as job_key, k.max_payload_bytes as cap, k.default_max_attempts,
                                     k.task_id, coalesce(q.id, k.default_queue_id) as queue_id,
                                     coalesce(e.job ->> 'queue', k.default_queue) as queue_name
                                -- ids drawn as the batch is read, in its order (before any join reorders it)
                                from (select e.*, nextval(jobs_sequence) as id
                                        from jsonb_array_elements(jobs) with ordinality as e(job, n) offset 0) e
                                left join known k on k.task = e.job ->> 'task'
                                -- a queue the job names itself (made known to the engine above)
                                left join graphile_worker._private_job_queues q on q.queue_name = e.job ->> 'queue'
                              offset 0) f
                       cross join lateral (select f.payload::text as payload_text) p
                      offset 0) s
              offset 0) c
       where c.shape is null and c.problem is null or pgjobs.refuse_bulk_job(c.n, c.job, c.shape, c.problem)
    ), added as (
      insert into graphile_worker._private_jobs (id, job_queue_id, task_id, payload, run_at, max_attempts, priority)
      overriding system value
      select c.id, c.queue_id, c.task_id, c.payload_text::json, coalesce(c.run_at, now()),
             coalesce(c.max_attempts, c.default_max_attempts, 25), coalesce(c.priority, 0)
        from checked c
       where c.job_key is null
      returning 1
    ), keyed_jobs as (
      select c.n, case when trusted then c.job_key else caller || '/' || c.job_key end as stored_key,
             (c.task, c.payload_text::json, c.queue_name, coalesce(c.run_at, now()),
              coalesce(c.max_attempts, c.default_max_attempts)::smallint,
              case when trusted then c.job_key else caller || '/' || c.job_key end,
              coalesce(c.priority, 0)::smallint, null)::graphile_worker.job_spec as spec
        from checked c
       where c.job_key is not null
    ), keyed_added as materialized (
      select a.*
        from (select where keyed) called_only_for_keys
       cross join lateral graphile_worker.add_jobs(array(select k.spec from keyed_jobs k order by k.n),
                                                  enqueue_many.job_key_mode = 'preserve_run_at') a
    )
    -- Each row without a key is its job as inserted, its id drawn above (no trigger of ours
    -- changes a row once the task defaults are applied): no join back through RETURNING, whose
    -- order SQL leaves open. A keyed job is found by its key.
    select c.n::integer, c.id, coalesce(c.run_at, now()), 0, coalesce(c.max_attempts, c.default_max_attempts, 25),
           c.queue_name, null::text
      from checked c
     where c.job_key is null
       and (select count(*) from added) = (select count(*) from checked where job_key is null)
    union all
    select k.n::integer, a.id, a.run_at, a.attempts::integer, a.max_attempts::integer, q.queue_name, a.key
      from keyed_jobs k
      join keyed_added a on a.key = k.stored_key
      left join graphile_worker._private_job_queues q on q.id = a.job_queue_id
    order by 1;
  exception when invalid_datetime_format or datetime_field_overflow or invalid_text_representation then
    perform pgjobs.refuse_unreadable_run_at(jobs);  -- only a run_at can fail to parse there
    raise;
  end;
  get diagnostics returned = row_count;
  perform set_config('pgjobs.task_defaults_applied', '', true);

  if returned <> jsonb_array_length(jobs) then
    select e.n - 1 as i into bad
      from jsonb_array_elements(jobs) with ordinality as e(job, n)
     where e.job ->> 'job_key' is not null
       and not exists (select 1 from graphile_worker._private_jobs j
                        where j.key = case when trusted then e.job ->> 'job_key' else caller || '/' || (e.job ->> 'job_key') end)
     order by e.n limit 1;
    if found then
      raise exception 'pgjobs.enqueue_many: graphile_worker.add_jobs did not return jobs[%] (its key held by a job that changed meanwhile?); nothing was enqueued', bad.i
        using errcode = 'internal_error';
    end if;
    raise exception 'pgjobs.enqueue_many: the engine''s table took % of % jobs (a trigger refused a row?); nothing was enqueued',
      returned, jsonb_array_length(jobs) using errcode = 'internal_error';
  end if;
  direct_count := jsonb_array_length(jobs)
                  - case when keyed then jsonb_array_length(jsonb_path_query_array(jobs, '$[*] ? (@.job_key != null)')) else 0 end;
  if direct_count > 0 then
    -- graphile-worker listens for this (add_jobs sends the same for its jobs); `r` keeps two
    -- batches of one transaction from being folded into one notification.
    perform pg_notify('jobs:insert', json_build_object('r', random(), 'count', direct_count)::text);
  end if;
end;
$$;
