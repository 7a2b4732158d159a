-- Credits for app users (issue #9): on Supabase a signed-in user (`authenticated`) sees and
-- moves only its own credit; deposits and expiry stay with the backend (`service_role`).
--
--   * An account has an owner: credits.accounts.owner_id, the app user's id (auth.uid()). Accounts
--     that exist before this migration have none, so no app user reaches them until the backend
--     says whose they are (credits.set_account_owner); nothing here guesses an owner from an id.
--   * Row-level security: a user reads its own accounts, their holds and their ledger, and
--     nothing else; writes go only through the functions below.
--   * The functions check the caller (pgjobs.caller_is_trusted, pgjobs.calling_role: the role the
--     request runs as, which SECURITY DEFINER does not hide). place_hold, capture_hold and
--     release_hold: a backend may act on any account, a user only on an account it owns.
--     deposit, expire_hold and expire_holds_batch: backends only, whoever is granted EXECUTE.
--     Each is a thin checking function in front of the previous one, which moves unchanged to
--     the schema credits_private, reached by no role but the owner: the rules of 0003/0004 stay
--     as they were written (a later change to an operation is made there).
--   * Grants, where the roles exist (Supabase; the test bootstrap): `authenticated` may read the
--     three tables (its own rows) and call place_hold, capture_hold and release_hold;
--     `service_role` (BYPASSRLS) may read everything and call every credits operation except the
--     expiry timer's, which stay with the worker. `anon` gets nothing.
-- Works unchanged on plain PostgreSQL: the user id is read from request.jwt.claims exactly as
-- Supabase's auth.uid() reads it, and without the roles nothing is granted to anyone.

alter table credits.accounts add column owner_id uuid;
create index accounts_owner_id on credits.accounts (owner_id) where owner_id is not null;

comment on column credits.accounts.owner_id is 'The app user (auth.uid()) whose account this is; null: only the backend reaches it.';

-- ── Who is calling ───────────────────────────────────────────────────────────────────────
-- The signed-in app user, as Supabase's auth.uid() reads it from the request's JWT claims; null
-- for a request without one (anon, a backend).
create function credits.current_user_id() returns uuid
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid;
end;
$$;

comment on function credits.current_user_id is 'The app user of this request (auth.uid(): the JWT claims'' sub), or null.';

-- Raises unless the caller may act on the account: a backend always, an app user only on an
-- account it owns. The same answer for someone else's account and for no account at all, so a
-- user cannot probe which accounts exist.
create function credits.authorize_account(account_id text, operation text) returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  user_id uuid;
begin
  if pgjobs.caller_is_trusted() then
    return;
  end if;
  user_id := credits.current_user_id();
  if user_id is null then
    raise exception 'credits.%: role % has no signed-in user; only an account''s owner or the backend may do this',
      operation, pgjobs.calling_role() using errcode = 'insufficient_privilege';
  end if;
  if not exists (select 1 from credits.accounts a where a.id = authorize_account.account_id and a.owner_id = user_id) then
    raise exception 'credits.%: credit account % is not yours (or does not exist)', operation, account_id
      using errcode = 'insufficient_privilege';
  end if;
end;
$$;

-- The same for the account a hold belongs to (a hold's account never changes).
create function credits.authorize_hold(hold_id bigint, operation text) returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  user_id uuid;
begin
  if pgjobs.caller_is_trusted() then
    return;
  end if;
  user_id := credits.current_user_id();
  if user_id is null then
    raise exception 'credits.%: role % has no signed-in user; only an account''s owner or the backend may do this',
      operation, pgjobs.calling_role() using errcode = 'insufficient_privilege';
  end if;
  if not exists (select 1 from credits.holds h join credits.accounts a on a.id = h.account_id
                  where h.id = authorize_hold.hold_id and a.owner_id = user_id) then
    raise exception 'credits.%: credit hold % is not yours (or does not exist)', operation, hold_id
      using errcode = 'insufficient_privilege';
  end if;
end;
$$;

-- Raises unless the caller is a backend.
create function credits.authorize_backend(operation text) returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if not pgjobs.caller_is_trusted() then
    raise exception 'credits.%: only the backend (service_role) may do this; role % may not', operation, pgjobs.calling_role()
      using errcode = 'insufficient_privilege';
  end if;
end;
$$;

-- ── The operations, checked ──────────────────────────────────────────────────────────────
create schema credits_private;
revoke all on schema credits_private from public;
comment on schema credits_private is 'The credits operations without their caller checks: for the owner only; call credits.* instead.';

alter function credits.deposit(text, bigint, text) set schema credits_private;
alter function credits.place_hold(text, bigint, timestamptz, text) set schema credits_private;
alter function credits.capture_hold(bigint, bigint) set schema credits_private;
alter function credits.release_hold(bigint) set schema credits_private;
alter function credits.expire_hold(bigint) set schema credits_private;
alter function credits.expire_holds_batch(integer, integer) set schema credits_private;
revoke all on all functions in schema credits_private from public;

create function credits.deposit(account_id text, amount bigint, idempotency_key text)
returns credits.ledger_entries
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform credits.authorize_backend('deposit');
  return credits_private.deposit(account_id, amount, idempotency_key);
end;
$$;

create function credits.place_hold(account_id text, amount bigint, expires_at timestamptz, idempotency_key text)
returns credits.holds
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform credits.authorize_account(account_id, 'place_hold');
  return credits_private.place_hold(account_id, amount, expires_at, idempotency_key);
end;
$$;

create function credits.capture_hold(hold_id bigint, amount bigint default null)
returns credits.holds
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform credits.authorize_hold(hold_id, 'capture_hold');
  return credits_private.capture_hold(hold_id, amount);
end;
$$;

create function credits.release_hold(hold_id bigint)
returns credits.holds
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform credits.authorize_hold(hold_id, 'release_hold');
  return credits_private.release_hold(hold_id);
end;
$$;

create function credits.expire_hold(hold_id bigint)
returns credits.holds
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform credits.authorize_backend('expire_hold');
  return credits_private.expire_hold(hold_id);
end;
$$;

create function credits.expire_holds_batch(batch_size integer default 1000, max_accounts integer default 50)
returns table (expired integer, accounts integer)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform credits.authorize_backend('expire_holds_batch');
  return query select * from credits_private.expire_holds_batch(batch_size, max_accounts);
end;
$$;

-- Whose account it is: creates the account (like a first deposit) if it does not exist yet.
-- Backends only. For apps whose account ids are their users' ids, a one-off backfill is
--   update credits.accounts set owner_id = id::uuid
--    where owner_id is null and id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
create function credits.set_account_owner(account_id text, owner_id uuid)
returns credits.accounts
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  account credits.accounts;
begin
  perform credits.authorize_backend('set_account_owner');
  if account_id is null or length(account_id) not between 1 and 200 then
    raise exception 'credits.set_account_owner: account id must be 1 to 200 characters' using errcode = 'CR006';
  end if;
  insert into credits.accounts (id, owner_id) values (set_account_owner.account_id, set_account_owner.owner_id)
  on conflict (id) do update set owner_id = excluded.owner_id, updated_at = now()
  returning * into account;
  return account;
end;
$$;

comment on function credits.deposit is 'Add credit (creates the account on first deposit); idempotent per (account, key). Backend only.';
comment on function credits.place_hold is 'Reserve credit until expires_at; arms the expiry timer if it fires later. CR001 when credit is short. The account''s owner or the backend.';
comment on function credits.capture_hold is 'Charge a hold, all (amount null) or part (the rest is released). The account''s owner or the backend.';
comment on function credits.release_hold is 'Give a hold''s credit back; no-op if already released or expired. The account''s owner or the backend.';
comment on function credits.expire_hold is 'Expire one hold if still active and due; otherwise nothing. Backend only.';
comment on function credits.expire_holds_batch is 'Expire up to batch_size due holds of up to max_accounts accounts, SKIP LOCKED; returns counts. Backend only.';
comment on function credits.set_account_owner is 'Say which app user (auth.uid()) owns an account, creating it if needed. Backend only.';
comment on function credits_private.deposit is 'credits.deposit without its caller check: for the owner only.';
comment on function credits_private.place_hold is 'credits.place_hold without its caller check: for the owner only.';
comment on function credits_private.capture_hold is 'credits.capture_hold without its caller check: for the owner only.';
comment on function credits_private.release_hold is 'credits.release_hold without its caller check: for the owner only.';
comment on function credits_private.expire_hold is 'credits.expire_hold without its caller check: for the owner only.';
comment on function credits_private.expire_holds_batch is 'credits.expire_holds_batch without its caller check: for the owner only.';

-- ── Row-level security ───────────────────────────────────────────────────────────────────
-- The functions run as the tables' owner, which RLS does not restrict; these policies are for
-- reading. No policy allows a write: writes go through the functions. `to public`, not `to
-- authenticated`, so this applies where that role does not exist; a request with no user id
-- matches nothing.
alter table credits.accounts enable row level security;
alter table credits.holds enable row level security;
alter table credits.ledger_entries enable row level security;
alter table credits.expiry_timer enable row level security;

create policy accounts_read_own on credits.accounts for select
  using (owner_id = (select credits.current_user_id()));
create policy holds_read_own on credits.holds for select
  using (account_id in (select a.id from credits.accounts a where a.owner_id = (select credits.current_user_id())));
create policy ledger_entries_read_own on credits.ledger_entries for select
  using (account_id in (select a.id from credits.accounts a where a.owner_id = (select credits.current_user_id())));

-- ── Privileges ───────────────────────────────────────────────────────────────────────────
revoke all on all tables in schema credits from public;
revoke all on all functions in schema credits from public;
do $$
begin
  if exists (select 1 from pg_roles where rolname = 'authenticated') then
    grant usage on schema credits to authenticated;
    grant select on credits.accounts, credits.holds, credits.ledger_entries to authenticated;
    grant execute on function credits.current_user_id(), credits.place_hold(text, bigint, timestamptz, text),
      credits.capture_hold(bigint, bigint), credits.release_hold(bigint) to authenticated;
  end if;
  if exists (select 1 from pg_roles where rolname = 'service_role') then
    grant usage on schema credits to service_role;
    grant select on credits.accounts, credits.holds, credits.ledger_entries, credits.expiry_lag to service_role;
    grant execute on function credits.current_user_id(), credits.place_hold(text, bigint, timestamptz, text),
      credits.capture_hold(bigint, bigint), credits.release_hold(bigint), credits.deposit(text, bigint, text),
      credits.expire_hold(bigint), credits.expire_holds_batch(integer, integer),
      credits.set_account_owner(text, uuid) to service_role;
  end if;
end;
$$;
