-- Credits: accounts with a balance, holds that reserve part of it, and an append-only ledger.
--
-- Invariants (the constraint enforces what a constraint can; the functions below keep the rest,
-- and test/credits-*.test.ts checks them under concurrency):
--   * available = balance - held >= 0, and balance >= 0, held >= 0           (check constraints)
--   * balance = sum(ledger_entries.amount) for the account                    (functions)
--   * held = sum(amount of active holds) = sum(ledger_entries.held_change)    (functions)
--   * a hold leaves 'active' exactly once, and its row never changes again   (trigger)
--   * at most one resolution entry (capture/release/expire) per hold         (unique index)
--   * the ledger is never updated or deleted                                  (trigger)
--
-- Lock order, in every function here: the account row first, then the hold row. Callers that
-- lock credits rows themselves in a transaction must do the same, or risk deadlocks. The sweep
-- (expire_holds_batch) takes both with SKIP LOCKED, so it never waits on anyone.
--
-- Errors use SQLSTATE class CR (src/credits/credits.errors.ts maps them to typed errors):
--   CR001 insufficient credit   CR002 account not found   CR003 hold not found
--   CR004 hold already resolved (cannot capture/release)  CR005 idempotency key reused
--   CR006 invalid request (amount, expiry, key)

create schema credits;
revoke all on schema credits from public;

create table credits.accounts (
  -- The app's own id for whoever owns the credit (a user or organisation id, as text).
  id text primary key check (length(id) between 1 and 200),
  balance bigint not null default 0 check (balance >= 0),
  held bigint not null default 0 check (held >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint accounts_available_not_negative check (balance - held >= 0)
);

comment on table credits.accounts is 'Credit per account: balance = sum of ledger; held = sum of active holds; balance - held is available.';

create table credits.holds (
  id bigint generated always as identity primary key,
  account_id text not null references credits.accounts (id),
  amount bigint not null check (amount > 0),
  state text not null default 'active' check (state in ('active', 'captured', 'released', 'expired')),
  captured_amount bigint,
  expires_at timestamptz not null,
  idempotency_key text not null check (length(idempotency_key) between 1 and 200),
  created_at timestamptz not null default now(),
  resolved_at timestamptz,
  constraint holds_idempotency_key_unique unique (account_id, idempotency_key),
  constraint holds_resolved_iff_not_active check ((state = 'active') = (resolved_at is null)),
  constraint holds_captured_amount check (
    (state = 'captured') = (captured_amount is not null) and (captured_amount is null or captured_amount between 1 and amount)
  )
);

comment on table credits.holds is 'Credit reserved until captured, released or expired; leaves active exactly once.';

-- The sweep and the dry run scan only this: due holds, oldest first.
create index holds_active_expires_at on credits.holds (expires_at) where state = 'active';
create index holds_account_created on credits.holds (account_id, created_at desc);

create table credits.ledger_entries (
  id bigint generated always as identity primary key,
  account_id text not null references credits.accounts (id),
  kind text not null check (kind in ('deposit', 'hold', 'capture', 'release', 'expire')),
  -- Change to the balance (signed): + for deposits, - for captures, 0 otherwise.
  amount bigint not null,
  -- Change to the held amount (signed): + when a hold is placed, - when it is resolved.
  held_change bigint not null default 0,
  hold_id bigint references credits.holds (id),
  -- Set for deposits only (holds keep theirs on the hold).
  idempotency_key text check (length(idempotency_key) between 1 and 200),
  created_at timestamptz not null default now(),
  constraint ledger_deposit_key_unique unique (account_id, idempotency_key),
  constraint ledger_entry_shape check (
    case kind
      when 'deposit' then amount > 0 and held_change = 0 and hold_id is null and idempotency_key is not null
      when 'hold' then amount = 0 and held_change > 0 and hold_id is not null and idempotency_key is null
      when 'capture' then amount < 0 and held_change < 0 and hold_id is not null and idempotency_key is null
      else amount = 0 and held_change < 0 and hold_id is not null and idempotency_key is null
    end
  )
);

comment on table credits.ledger_entries is 'Append-only: every change to balance or held. sum(amount) = balance, sum(held_change) = held.';

-- A hold is resolved once: a second capture, release or expiry of the same hold cannot commit.
create unique index ledger_one_resolution_per_hold on credits.ledger_entries (hold_id)
  where kind in ('capture', 'release', 'expire');
create index ledger_account_id on credits.ledger_entries (account_id, id desc);

-- ── Guards ────────────────────────────────────────────────────────────────────────────────
create function credits.forbid_history_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception 'credits.% is append-only: % is not allowed', tg_table_name, tg_op
    using errcode = 'insufficient_privilege',
          hint = 'Credit history is never edited: correct a mistake with a new entry (a deposit, or a new hold).';
end;
$$;

create trigger ledger_entries_append_only
  before update or delete on credits.ledger_entries
  for each row execute function credits.forbid_history_change();

create trigger ledger_entries_no_truncate
  before truncate on credits.ledger_entries
  for each statement execute function credits.forbid_history_change();

create function credits.forbid_resolved_hold_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if old.state <> 'active' then
    raise exception 'credit hold % is already % (since %); it cannot change again', old.id, old.state, old.resolved_at
      using errcode = 'CR004';
  end if;
  raise exception 'credit hold %: only state, captured_amount and resolved_at may change', old.id
    using errcode = 'CR006';
end;
$$;

-- The WHEN clause keeps the common path (active → resolved) free of a function call.
create trigger holds_resolve_once
  before update on credits.holds
  for each row
  when (old.state <> 'active' or new.id <> old.id or new.account_id <> old.account_id or new.amount <> old.amount
        or new.expires_at <> old.expires_at or new.idempotency_key <> old.idempotency_key)
  execute function credits.forbid_resolved_hold_change();

create trigger holds_no_delete
  before delete on credits.holds
  for each row execute function credits.forbid_history_change();

-- ── Operations ────────────────────────────────────────────────────────────────────────────
-- Each runs in the caller's transaction (so an app can combine them with its own writes, or
-- call them from a trigger) and writes its ledger entries there.

-- Adds credit, creating the account on its first deposit. Idempotent per (account, key).
create function credits.deposit(account_id text, amount bigint, idempotency_key text)
returns credits.ledger_entries
language plpgsql
security definer
set search_path = ''
as $$
declare
  entry credits.ledger_entries;
begin
  if amount is null or amount <= 0 then
    raise exception 'credits.deposit: amount must be a positive whole number of credits, got % (account %)',
      coalesce(amount::text, 'null'), account_id using errcode = 'CR006';
  end if;
  if idempotency_key is null or length(idempotency_key) not between 1 and 200 then
    raise exception 'credits.deposit: an idempotency key of 1 to 200 characters is required (account %)', account_id
      using errcode = 'CR006', hint = 'Use the id of what paid for the credit, such as a payment id.';
  end if;
  if account_id is null or length(account_id) not between 1 and 200 then
    raise exception 'credits.deposit: account id must be 1 to 200 characters' using errcode = 'CR006';
  end if;
  insert into credits.accounts (id) values (deposit.account_id) on conflict do nothing;
  perform 1 from credits.accounts a where a.id = deposit.account_id for update;

  select * into entry from credits.ledger_entries e
   where e.account_id = deposit.account_id and e.idempotency_key = deposit.idempotency_key;
  if found then
    if entry.amount <> deposit.amount then
      raise exception 'credits.deposit: idempotency key "%" was already used on account % for a deposit of %, not %',
        idempotency_key, account_id, entry.amount, amount
        using errcode = 'CR005', hint = 'Use a new key for a new deposit; repeat a deposit only with its original amount.';
    end if;
    return entry; -- the same deposit again: no second effect
  end if;

  insert into credits.ledger_entries (account_id, kind, amount, idempotency_key)
  values (deposit.account_id, 'deposit', deposit.amount, deposit.idempotency_key)
  returning * into entry;
  update credits.accounts a set balance = a.balance + deposit.amount, updated_at = now() where a.id = deposit.account_id;
  return entry;
end;
$$;

-- Reserves credit until expires_at and schedules the hold's own expiry job in the same
-- transaction. Idempotent per (account, key): a repeat returns the hold as it is now.
create function credits.place_hold(account_id text, amount bigint, expires_at timestamptz, idempotency_key text)
returns credits.holds
language plpgsql
security definer
set search_path = ''
as $$
declare
  acct credits.accounts;
  hold credits.holds;
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
    return hold; -- the same hold again: no second reservation, no second job
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

  insert into credits.holds (account_id, amount, expires_at, idempotency_key)
  values (place_hold.account_id, place_hold.amount, place_hold.expires_at, place_hold.idempotency_key)
  returning * into hold;
  update credits.accounts a set held = a.held + place_hold.amount, updated_at = now() where a.id = place_hold.account_id;
  insert into credits.ledger_entries (account_id, kind, amount, held_change, hold_id)
  values (place_hold.account_id, 'hold', 0, place_hold.amount, hold.id);

  -- The hold expires on time by its own job; the 3-hourly sweep is only the safety net.
  -- A capture or release before then leaves this job nothing to do.
  perform graphile_worker.add_job(
    'credits__expire_hold',
    json_build_object('holdId', hold.id),
    run_at => hold.expires_at,
    job_key => 'credits:hold:' || hold.id,
    max_attempts => 5
  );
  return hold;
end;
$$;

-- Locks the hold's account, then the hold (the fixed order); raises CR003 when it is unknown.
create function credits.lock_hold(hold_id bigint)
returns credits.holds
language plpgsql
set search_path = ''
as $$
declare
  owner text;
  hold credits.holds;
begin
  -- account_id never changes (trigger), so reading it before taking any lock is safe.
  select h.account_id into owner from credits.holds h where h.id = lock_hold.hold_id;
  if not found then
    raise exception 'credit hold % does not exist', coalesce(hold_id::text, 'null')
      using errcode = 'CR003', hint = 'Check the hold id; holds are never deleted.';
  end if;
  perform 1 from credits.accounts a where a.id = owner for update;
  select * into hold from credits.holds h where h.id = lock_hold.hold_id for update;
  return hold;
end;
$$;

-- Charges the hold: all of it (amount null) or part, releasing the rest. Allowed while the hold
-- is active, even past expires_at if the expiry has not happened yet: whoever locks first wins.
-- A repeat with the same amount returns the captured hold without charging again.
create function credits.capture_hold(hold_id bigint, amount bigint default null)
returns credits.holds
language plpgsql
security definer
set search_path = ''
as $$
declare
  hold credits.holds;
  charge bigint;
begin
  hold := credits.lock_hold(hold_id);
  if hold.state = 'captured' then
    if coalesce(amount, hold.amount) = hold.captured_amount then
      return hold;
    end if;
    raise exception 'credit hold % (account %) was already captured for % of %; a capture of % was asked',
      hold.id, hold.account_id, hold.captured_amount, hold.amount, coalesce(amount, hold.amount)
      using errcode = 'CR005', hint = 'A hold is captured once. Place a new hold to charge more.';
  end if;
  if hold.state <> 'active' then
    raise exception 'credit hold % (account %) was already % at %; nothing was captured',
      hold.id, hold.account_id, hold.state, hold.resolved_at
      using errcode = 'CR004', hint = 'Its credit was given back. Place a new hold to charge this account.';
  end if;
  charge := coalesce(amount, hold.amount);
  if charge < 1 or charge > hold.amount then
    raise exception 'credit hold % (account %) holds %; cannot capture %', hold.id, hold.account_id, hold.amount, charge
      using errcode = 'CR006', hint = 'Capture between 1 and the held amount; release the hold to charge nothing.';
  end if;

  update credits.holds h set state = 'captured', captured_amount = charge, resolved_at = now()
   where h.id = hold.id returning * into hold;
  update credits.accounts a set balance = a.balance - charge, held = a.held - hold.amount, updated_at = now()
   where a.id = hold.account_id;
  insert into credits.ledger_entries (account_id, kind, amount, held_change, hold_id)
  values (hold.account_id, 'capture', -charge, -hold.amount, hold.id);
  return hold;
end;
$$;

-- Gives the held credit back. A no-op for a hold already released or expired (the credit is
-- free either way); an error for a captured one, whose credit was spent.
create function credits.release_hold(hold_id bigint)
returns credits.holds
language plpgsql
security definer
set search_path = ''
as $$
declare
  hold credits.holds;
begin
  hold := credits.lock_hold(hold_id);
  if hold.state = 'captured' then
    raise exception 'credit hold % (account %) was captured for % at %; it cannot be released',
      hold.id, hold.account_id, hold.captured_amount, hold.resolved_at
      using errcode = 'CR004', hint = 'To give credit back after a capture, deposit it with its own idempotency key.';
  end if;
  if hold.state <> 'active' then
    return hold;
  end if;
  update credits.holds h set state = 'released', resolved_at = now() where h.id = hold.id returning * into hold;
  update credits.accounts a set held = a.held - hold.amount, updated_at = now() where a.id = hold.account_id;
  insert into credits.ledger_entries (account_id, kind, amount, held_change, hold_id)
  values (hold.account_id, 'release', 0, -hold.amount, hold.id);
  return hold;
end;
$$;

-- The hold's own expiry job calls this. Does nothing unless the hold is still active and due.
create function credits.expire_hold(hold_id bigint)
returns credits.holds
language plpgsql
security definer
set search_path = ''
as $$
declare
  hold credits.holds;
begin
  hold := credits.lock_hold(hold_id);
  if hold.state <> 'active' or hold.expires_at > now() then
    return hold;
  end if;
  update credits.holds h set state = 'expired', resolved_at = now() where h.id = hold.id returning * into hold;
  update credits.accounts a set held = a.held - hold.amount, updated_at = now() where a.id = hold.account_id;
  insert into credits.ledger_entries (account_id, kind, amount, held_change, hold_id)
  values (hold.account_id, 'expire', 0, -hold.amount, hold.id);
  return hold;
end;
$$;

-- One batch of the sweep: expires up to batch_size due active holds, oldest first. Rows are
-- locked account first, then hold, with SKIP LOCKED: a hold being captured right now (or whose
-- account is busy) is left for its own job or the next sweep, and the sweep never waits.
-- LIMIT counts only rows it could lock, so a short batch means nothing lockable is left.
create function credits.expire_holds_batch(batch_size integer default 1000)
returns table (expired integer, accounts integer)
language plpgsql
security definer
set search_path = ''
as $$
begin
  if batch_size is null or batch_size not between 1 and 100000 then
    raise exception 'credits.expire_holds_batch: batch_size must be between 1 and 100000, got %',
      coalesce(batch_size::text, 'null') using errcode = 'CR006';
  end if;
  return query
  with due as (
    select h.id, h.account_id, h.amount
      from credits.holds h
      join credits.accounts a on a.id = h.account_id
     where h.state = 'active' and h.expires_at <= now()
     order by h.expires_at
     limit batch_size
       for update of a, h skip locked
  ), expired_holds as (
    update credits.holds h set state = 'expired', resolved_at = now()
      from due
     where h.id = due.id
    returning h.id, h.account_id, h.amount
  ), entries as (
    insert into credits.ledger_entries (account_id, kind, amount, held_change, hold_id)
    select e.account_id, 'expire', 0, -e.amount, e.id from expired_holds e
  ), per_account as (
    update credits.accounts a set held = a.held - t.released, updated_at = now()
      from (select e.account_id, sum(e.amount) as released from expired_holds e group by e.account_id) t
     where a.id = t.account_id
    returning a.id
  )
  select (select count(*) from expired_holds)::integer, (select count(*) from per_account)::integer;
end;
$$;

comment on function credits.deposit is 'Add credit (creates the account on first deposit); idempotent per (account, key).';
comment on function credits.place_hold is 'Reserve credit until expires_at and schedule its expiry job; CR001 when credit is short.';
comment on function credits.capture_hold is 'Charge a hold, all (amount null) or part (the rest is released).';
comment on function credits.release_hold is 'Give a hold''s credit back; no-op if already released or expired.';
comment on function credits.expire_hold is 'Expire one hold if still active and due; otherwise nothing.';
comment on function credits.expire_holds_batch is 'Expire up to batch_size due holds with SKIP LOCKED; returns counts.';

-- ── Privileges ────────────────────────────────────────────────────────────────────────────
-- Nothing here is for anyone but the owner until granted one function at a time.
revoke all on all tables in schema credits from public;
revoke all on all functions in schema credits from public;
