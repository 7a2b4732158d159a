-- Credits on time at any scale (issue #11): one self-rearming expiry timer instead of a job per
-- hold, a sweep that locks only a few accounts at a time, and expiry lag readable in SQL.
--
-- Why a timer and not a job per hold (measured in bench/credits-scale.ts, README "Credits"): the
-- per-hold add_job was most of place_hold's cost, its jobs outlived captured and released holds,
-- and a backlog of them made expiry late by the time it took to drain them. Now place_hold reads
-- one row (credits.expiry_timer) and touches the queue only when its hold expires before the
-- armed time, which for holds placed in time order is only the first hold after an idle spell.
--
-- The timer protocol (credits__expiry_timer, src/credits/expiry-timer.service.ts):
--   1. begin: the run clears armed_at if it is the armed job, so holds placed from now on arm a
--      new timer themselves;
--   2. it notes the transactions still writing holds (they may have read the old armed_at);
--   3. it expires what is due (expire_holds_batch);
--   4. it waits, bounded, for those transactions to end, so their holds are visible;
--   5. rearm: the timer is armed for the earliest active hold (never sooner than `resolution`
--      from now), or, if some of those transactions were still open, within `resolution`.
-- A hold is therefore expired at most `resolution` (+ the worker's poll interval) after
-- expires_at while a worker has a free slot; the timer's priority puts it ahead of other jobs.
-- The 3-hourly sweep stays the safety net, and it re-arms the timer if its job was lost.
--
-- Lock order, unchanged for callers: account, then hold. The sweep takes both with SKIP LOCKED
-- and never waits. The timer row is taken last and, inside place_hold, without waiting (SKIP
-- LOCKED): an app transaction holding account locks never queues on it, so it adds no deadlock.

-- ── The timer ─────────────────────────────────────────────────────────────────────────────
create table credits.expiry_timer (
  id boolean primary key default true check (id),
  -- run_at of the pending timer job; null when none is pending (no active holds, or a run has
  -- begun and not re-armed yet: a hold placed meanwhile then arms the timer itself).
  armed_at timestamptz,
  -- That job in graphile_worker (moved while it waits, replaced once it runs).
  job_id bigint,
  -- Lateness bound and least gap between runs: a stream of expiries runs the timer at most once
  -- per resolution, and a hold expiring within this of the armed time does not move it.
  resolution interval not null default interval '1 second'
    check (resolution between interval '0' and interval '1 minute'),
  updated_at timestamptz not null default now()
);

insert into credits.expiry_timer default values;

comment on table credits.expiry_timer is 'The one expiry timer: when its job fires next (armed_at) and which job that is.';

-- The sweep's per-account scan: an account's due holds, without reading its resolved ones.
create index holds_active_account on credits.holds (account_id, expires_at) where state = 'active';

-- Deposits are the only entries with a key: indexing the others (all null) cost every ledger
-- insert an index entry for nothing. Same rule (nulls never conflicted), a smaller index.
create unique index ledger_deposit_key on credits.ledger_entries (account_id, idempotency_key)
  where idempotency_key is not null;
alter table credits.ledger_entries drop constraint ledger_deposit_key_unique;

-- ── Ledger references, checked once per statement ─────────────────────────────────────────
-- The ledger's two foreign keys looked up and row-locked the account and the hold once per
-- entry: a third of the sweep's time (README, "Credits"). The same rule is now checked once per
-- statement over all its new entries, and is stricter: a hold's entry must name the hold's own
-- account. What the keys also did, keep referenced rows from going away, the guards below do:
-- holds could already never be deleted nor change id; now accounts cannot either, and neither
-- table can be truncated.
create function credits.check_ledger_references() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  bad record;
begin
  select n.account_id, n.hold_id, n.kind into bad
    from new_entries n
   where not exists (select 1 from credits.accounts a where a.id = n.account_id)
      or (n.hold_id is not null
          and not exists (select 1 from credits.holds h where h.id = n.hold_id and h.account_id = n.account_id))
   limit 1;
  if found then
    raise exception 'credits ledger: a % entry names account % and hold %, and no such account (or hold of it) exists',
      bad.kind, bad.account_id, coalesce(bad.hold_id::text, 'none')
      using errcode = 'foreign_key_violation',
            hint = 'Ledger entries are written by the credits.* functions; write through them.';
  end if;
  return null;
end;
$$;

create trigger ledger_entries_references
  after insert on credits.ledger_entries
  referencing new table as new_entries
  for each statement execute function credits.check_ledger_references();

alter table credits.ledger_entries
  drop constraint ledger_entries_account_id_fkey,
  drop constraint ledger_entries_hold_id_fkey;

create function credits.forbid_removal() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception 'credits.%: % is not allowed: the ledger refers to these rows', tg_table_name, tg_op
    using errcode = 'insufficient_privilege',
          hint = 'Accounts and holds are kept for as long as their ledger; a closed account is one with nothing available.';
end;
$$;

create trigger accounts_no_delete before delete on credits.accounts
  for each row execute function credits.forbid_removal();
create trigger accounts_no_id_change before update of id on credits.accounts
  for each row when (new.id <> old.id) execute function credits.forbid_removal();
create trigger accounts_no_truncate before truncate on credits.accounts
  for each statement execute function credits.forbid_removal();
create trigger holds_no_truncate before truncate on credits.holds
  for each statement execute function credits.forbid_removal();

-- Moves the timer to fire at `fire_at` or earlier. With wait => false (place_hold), a timer row
-- locked by another arming transaction is not waited for: this hold gets a timer job of its own,
-- which is correct (any timer run expires every due hold) and keeps app transactions from
-- queueing on one row. A running job is never changed: graphile-worker would detach it and its
-- history would show the attempt abandoned; a new job is added instead.
create function credits.arm_expiry_timer(fire_at timestamptz, wait boolean default true)
returns timestamptz
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  timer credits.expiry_timer;
  armed_job bigint;
begin
  if fire_at is null then
    raise exception 'credits.arm_expiry_timer: fire_at must be a time, got null' using errcode = 'CR006';
  end if;
  if wait then
    select * into timer from credits.expiry_timer t for no key update;
  else
    select * into timer from credits.expiry_timer t for no key update skip locked;
    if not found then
      perform graphile_worker.add_job('credits__expiry_timer', '{}'::json, run_at => fire_at, priority => -10);
      return fire_at;
    end if;
  end if;
  if timer.armed_at is not null and timer.armed_at <= fire_at then
    return timer.armed_at;
  end if;
  if timer.job_id is not null then
    select j.id into armed_job from graphile_worker.reschedule_jobs(array[timer.job_id], run_at => fire_at) j
     where j.attempts < j.max_attempts;
  end if;
  if armed_job is null then
    select j.id into armed_job
      from graphile_worker.add_job('credits__expiry_timer', '{}'::json, run_at => fire_at, priority => -10) j;
  end if;
  update credits.expiry_timer t set armed_at = fire_at, job_id = armed_job, updated_at = now();
  return fire_at;
end;
$$;

-- Step 1 of a run: if this job is the armed one, nothing is armed any more.
create function credits.begin_expiry_timer(job_id bigint)
returns void
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
  update credits.expiry_timer t set armed_at = null, job_id = null, updated_at = now()
   where t.job_id = begin_expiry_timer.job_id;
$$;

-- Step 2: transactions (other than the caller's) that have written credits.holds and are still
-- open. Every place_hold inserts its hold before it reads armed_at, so this list, read after
-- step 1 committed, includes every transaction that may have read the armed_at step 1 cleared.
create function credits.open_hold_writers()
returns text[]
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(array_agg(distinct l.virtualtransaction), '{}')
    from pg_locks l
   where l.locktype = 'relation' and l.relation = 'credits.holds'::regclass and l.mode = 'RowExclusiveLock'
     and l.granted and l.pid is distinct from pg_backend_pid();
$$;

-- Step 4 polls this until it returns 0 (or gives up and re-arms soon).
create function credits.count_open(virtual_transactions text[])
returns integer
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
  select count(distinct l.virtualtransaction)::integer
    from pg_locks l
   where l.locktype = 'virtualxid' and l.virtualxid = any(virtual_transactions);
$$;

-- Step 5, and the sweep's safety net: arms the timer for the earliest active hold, not sooner
-- than `resolution` from now; with soon => true, within `resolution` whatever the earliest hold.
-- A job that no longer exists or failed for good is forgotten first, so the timer heals.
create function credits.rearm_expiry_timer(soon boolean default false)
returns timestamptz
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  timer credits.expiry_timer;
  next_at timestamptz;
begin
  select * into timer from credits.expiry_timer t for no key update;
  if timer.job_id is not null and not exists (
    select 1 from graphile_worker.jobs j where j.id = timer.job_id and j.attempts < j.max_attempts
  ) then
    update credits.expiry_timer t set armed_at = null, job_id = null, updated_at = now();
  end if;
  select min(h.expires_at) into next_at from credits.holds h where h.state = 'active';
  if soon then
    next_at := least(next_at, now() + timer.resolution);
  end if;
  if next_at is null then
    return (select t.armed_at from credits.expiry_timer t);
  end if;
  return credits.arm_expiry_timer(greatest(next_at, now() + timer.resolution));
end;
$$;

-- ── place_hold: no job per hold ───────────────────────────────────────────────────────────
create or replace function credits.place_hold(account_id text, amount bigint, expires_at timestamptz, idempotency_key text)
returns credits.holds
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  acct credits.accounts;
  hold credits.holds;
  armed timestamptz;
  resolution interval;
begin
  if amount is null or amount <= 0 then
    raise exception 'credits.place_hold: amount must be a positive whole number of credits, got % (account %)',
      coalesce(amount::text, 'null'), account_id using errcode = 'CR006';
  end if;
  if idempotency_key is null or length(idempotency_key) not between 1 and 200 then
    raise exception 'credits.place_hold: an idempotency key of 1 to 200 characters is required (account %)', account_id
      using errcode = 'CR006', hint = 'Use the id of what the hold is for, such as an order id.';
  end if;

  select * into acct from credits.accounts a where a.id = place_hold.account_id for update;
  if not found then
    raise exception 'credits.place_hold: credit account % does not exist', account_id
      using errcode = 'CR002', hint = 'An account is created by its first deposit; check the account id.';
  end if;

  select * into hold from credits.holds h
   where h.account_id = place_hold.account_id and h.idempotency_key = place_hold.idempotency_key;
  if found then
    if hold.amount <> place_hold.amount or hold.expires_at <> place_hold.expires_at then
      raise exception 'credits.place_hold: idempotency key "%" was already used on account % for hold % (% credits until %)',
        idempotency_key, account_id, hold.id, hold.amount, hold.expires_at
        using errcode = 'CR005', hint = 'Use a new key for a new hold; repeat a hold only with its original amount and expiry.';
    end if;
    return hold; -- the same hold again: no second reservation
  end if;

  if expires_at is null or expires_at <= now() then
    raise exception 'credits.place_hold: expires_at must be in the future, got % (account %)',
      coalesce(expires_at::text, 'null'), account_id using errcode = 'CR006';
  end if;
  if acct.balance - acct.held < amount then
    raise exception 'insufficient credit on account %: requested %, available % (balance %, held %)',
      account_id, amount, acct.balance - acct.held, acct.balance, acct.held
      using errcode = 'CR001',
            detail = json_build_object('account_id', account_id, 'requested', amount,
                                       'available', acct.balance - acct.held)::text,
            hint = 'Deposit more credit, hold less, or wait for active holds to be released or expire.';
  end if;

  -- The hold first: the timer's run finds this transaction by its write to credits.holds.
  insert into credits.holds (account_id, amount, expires_at, idempotency_key)
  values (place_hold.account_id, place_hold.amount, place_hold.expires_at, place_hold.idempotency_key)
  returning * into hold;
  update credits.accounts a set held = a.held + place_hold.amount, updated_at = now() where a.id = place_hold.account_id;
  insert into credits.ledger_entries (account_id, kind, amount, held_change, hold_id)
  values (place_hold.account_id, 'hold', 0, place_hold.amount, hold.id);

  -- Usually the timer is armed at or before this expiry already: one row read, no write.
  if current_setting('transaction_isolation') = 'read committed' then
    select t.armed_at, t.resolution into armed, resolution from credits.expiry_timer t;
  else
    -- Older snapshot: it may show a timer that has fired since. Locking the row makes such a
    -- stale read fail with 40001 (retry the transaction) instead of leaving the hold unarmed.
    select t.armed_at, t.resolution into armed, resolution from credits.expiry_timer t for key share;
  end if;
  if armed is null or hold.expires_at < armed - resolution then
    perform credits.arm_expiry_timer(hold.expires_at, wait => false);
  end if;
  return hold;
end;
$$;

-- ── The sweep: a few accounts at a time ───────────────────────────────────────────────────
-- One batch: the accounts of the oldest due holds (up to max_accounts), each locked with SKIP
-- LOCKED and then its due holds with SKIP LOCKED, until batch_size holds. Account first, then
-- hold, as every other function; and never waiting, so a capture never waits on a lock the sweep
-- wants, and waits on one it holds only if its account is one of the few in the batch (the
-- accounts are taken lazily: only as many as the batch's holds need). Returns 0 expired when
-- nothing due could be locked. The new parameter changes the signature: drop, then create.
drop function credits.expire_holds_batch(integer);

create function credits.expire_holds_batch(batch_size integer default 1000, max_accounts integer default 50)
returns table (expired integer, accounts integer)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  candidates text[];
  due tid[];
  account_ids text[];
  released bigint[];
  total integer;
begin
  if batch_size is null or batch_size not between 1 and 100000 then
    raise exception 'credits.expire_holds_batch: batch_size must be between 1 and 100000, got %',
      coalesce(batch_size::text, 'null') using errcode = 'CR006';
  end if;
  if max_accounts is null or max_accounts not between 1 and 10000 then
    raise exception 'credits.expire_holds_batch: max_accounts must be between 1 and 10000, got %',
      coalesce(max_accounts::text, 'null') using errcode = 'CR006';
  end if;
  candidates := array(
    select c.account_id
      from (select h.account_id, h.expires_at from credits.holds h
             where h.state = 'active' and h.expires_at <= now()
             order by h.expires_at limit max_accounts * 4) c
     group by c.account_id order by min(c.expires_at) limit max_accounts);
  if cardinality(candidates) = 0 then
    return query select 0, 0;
    return;
  end if;
  -- A nested loop under LIMIT: each account is locked only when the batch reaches it.
  due := array(
    select d.ctid
      from unnest(candidates) with ordinality as c(account_id, position)
     cross join lateral (select a.id from credits.accounts a where a.id = c.account_id for update skip locked) a
     cross join lateral (select h.ctid from credits.holds h
                          where h.account_id = a.id and h.state = 'active' and h.expires_at <= now()
                            for update skip locked) d
     limit batch_size);
  with expired_holds as (
    update credits.holds h set state = 'expired', resolved_at = now()
     where h.ctid = any(due) and h.state = 'active'
    returning h.id, h.account_id, h.amount
  ), entries as (
    insert into credits.ledger_entries (account_id, kind, amount, held_change, hold_id)
    select e.account_id, 'expire', 0, -e.amount, e.id from expired_holds e
  )
  select array_agg(t.account_id), array_agg(t.amount), coalesce(sum(t.holds), 0)
    into account_ids, released, total
    from (select e.account_id, sum(e.amount) as amount, count(*) as holds from expired_holds e group by e.account_id) t;
  update credits.accounts a set held = a.held - t.amount, updated_at = now()
    from unnest(account_ids, released) as t(account_id, amount)
   where a.id = t.account_id;
  return query select total, coalesce(cardinality(account_ids), 0);
end;
$$;

-- ── Lateness, in SQL ──────────────────────────────────────────────────────────────────────
-- Due holds still active, and how late the oldest is: zero but for a moment when expiry keeps
-- up. Reads the partial index on (expires_at) where active. For dashboards and /metrics.
create view credits.expiry_lag as
select (select count(*) from credits.holds h where h.state = 'active' and h.expires_at <= now()) as due_holds,
       coalesce(now() - (select min(h.expires_at) from credits.holds h where h.state = 'active'
                                                                   and h.expires_at <= now()),
                interval '0') as oldest_due_age,
       t.armed_at as timer_armed_at,
       t.job_id as timer_job_id
  from credits.expiry_timer t;

comment on view credits.expiry_lag is 'Active holds past expires_at (due_holds), the oldest one''s lateness, and when the timer fires next.';
comment on function credits.place_hold is 'Reserve credit until expires_at; arms the expiry timer if it fires later. CR001 when credit is short.';
comment on function credits.expire_holds_batch is 'Expire up to batch_size due holds of up to max_accounts accounts, SKIP LOCKED; returns counts.';
comment on function credits.arm_expiry_timer is 'Make the expiry timer fire at fire_at or earlier.';
comment on function credits.rearm_expiry_timer is 'Arm the expiry timer for the earliest active hold; heals a lost timer job.';

-- ── search_path: pg_catalog first, pg_temp last ───────────────────────────────────────────
-- With search_path '' PostgreSQL still searches pg_temp first for tables and types, so a temp
-- object could stand in for one of ours; naming pg_temp last closes that.
alter function credits.deposit(text, bigint, text) set search_path = pg_catalog, pg_temp;
alter function credits.capture_hold(bigint, bigint) set search_path = pg_catalog, pg_temp;
alter function credits.release_hold(bigint) set search_path = pg_catalog, pg_temp;
alter function credits.expire_hold(bigint) set search_path = pg_catalog, pg_temp;
alter function credits.lock_hold(bigint) set search_path = pg_catalog, pg_temp;
alter function credits.forbid_history_change() set search_path = pg_catalog, pg_temp;
alter function credits.forbid_resolved_hold_change() set search_path = pg_catalog, pg_temp;

-- ── Privileges ────────────────────────────────────────────────────────────────────────────
revoke all on credits.expiry_timer, credits.expiry_lag from public;
revoke all on function credits.arm_expiry_timer(timestamptz, boolean), credits.begin_expiry_timer(bigint),
  credits.open_hold_writers(), credits.count_open(text[]), credits.rearm_expiry_timer(boolean),
  credits.expire_holds_batch(integer, integer), credits.check_ledger_references(), credits.forbid_removal() from public;

-- The timer's task must be known before add_job may name it (pgjobs refuses unknown tasks);
-- `pgjobs migrate` writes the same row from src/tasks/index.ts right after this.
insert into pgjobs.task_registry (task) values ('credits__expiry_timer') on conflict do nothing;
-- Holds placed before this migration keep their own credits__expire_hold jobs (still run, and
-- harmless: the timer's priority puts it ahead of them); the timer covers those holds too.
select credits.rearm_expiry_timer();
