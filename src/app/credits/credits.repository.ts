/**
 * The credits operations, as calls to the SQL functions in migrations/0003_credits.sql and 0004. Every
 * function takes `db` first: pass a transaction to make the credit change part of your own
 * (the ledger entry and the hold then commit or roll back with it), or the
 * pool-backed Kysely to run it on its own.
 *
 * @example
 * await db.transaction().execute(async (trx) => {
 *   const order = await insertOrder(trx, input);
 *   await placeHold(trx, { accountId: input.userId, amount: order.price, expiresAt, idempotencyKey: `order:${order.id}` });
 * });
 */
import { type Kysely, type RawBuilder, sql } from "kysely";
import type { CreditHoldState, CreditLedgerKind, CreditsDatabase as Database } from "./credits.tables.ts";
import { InvalidCreditRequestError, toCreditError } from "./credits.errors.ts";

// Any Kysely works: an app's own Database type is not ours to know.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

export interface Hold {
  id: string;
  accountId: string;
  amount: number;
  state: CreditHoldState;
  /** Set once captured: what was charged (the rest of `amount` went back). */
  capturedAmount: number | null;
  expiresAt: Date;
  idempotencyKey: string;
  createdAt: Date;
  resolvedAt: Date | null;
}

export interface LedgerEntry {
  id: string;
  accountId: string;
  kind: CreditLedgerKind;
  /** Change to the balance: + deposit, − capture, 0 otherwise. */
  amount: number;
  /** Change to the held amount: + hold placed, − hold resolved. */
  heldChange: number;
  holdId: string | null;
  idempotencyKey: string | null;
  createdAt: Date;
}

export interface Account {
  id: string;
  balance: number;
  held: number;
  /** balance − held: what a new hold can take. */
  available: number;
  /** The app user (auth.uid()) who owns it; null: only the backend reaches it. */
  ownerId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

interface HoldRow {
  id: string;
  account_id: string;
  amount: string;
  state: CreditHoldState;
  captured_amount: string | null;
  expires_at: Date;
  idempotency_key: string;
  created_at: Date;
  resolved_at: Date | null;
}

interface LedgerRow {
  id: string;
  account_id: string;
  kind: CreditLedgerKind;
  amount: string;
  held_change: string;
  hold_id: string | null;
  idempotency_key: string | null;
  created_at: Date;
}

interface AccountRow {
  id: string;
  balance: string;
  held: string;
  owner_id: string | null;
  created_at: Date;
  updated_at: Date;
}

/** Adds credit to an account, creating it on its first deposit. Repeating a key returns the first entry. */
export async function deposit(
  db: AnyDb,
  input: { accountId: string; amount: number; idempotencyKey: string },
): Promise<LedgerEntry> {
  const amount = wholeCredits(input.amount, `deposit to account ${input.accountId}`);
  const row = await callOne<LedgerRow>(
    db,
    sql`select * from credits.deposit(${input.accountId}::text, ${amount}::bigint, ${input.idempotencyKey}::text)`,
  );
  return ledgerRowToEntry(row);
}

/**
 * Says which app user (Supabase's auth.uid()) owns the account, creating the account if needed:
 * that user may then read it and place, capture and release its holds (migrations/0005). A
 * backend call (the app's own connection, or service_role).
 */
export async function setAccountOwner(db: AnyDb, accountId: string, ownerId: string | null): Promise<Account> {
  const row = await callOne<AccountRow>(
    db,
    sql`select * from credits.set_account_owner(${accountId}::text, ${ownerId}::uuid)`,
  );
  return accountRowToAccount(row);
}

/**
 * Reserves credit until `expiresAt`; if the expiry timer would fire too late for this hold, arms
 * it earlier in the same transaction (rarely: usually it is armed for an earlier hold already).
 * Throws InsufficientCreditError when available credit is short. Repeating a key returns the
 * hold as it is now, without reserving twice.
 */
export async function placeHold(
  db: AnyDb,
  input: { accountId: string; amount: number; expiresAt: Date; idempotencyKey: string },
): Promise<Hold> {
  const amount = wholeCredits(input.amount, `hold on account ${input.accountId}`);
  const row = await callOne<HoldRow>(
    db,
    sql`select * from credits.place_hold(${input.accountId}::text, ${amount}::bigint,
          ${input.expiresAt}::timestamptz, ${input.idempotencyKey}::text)`,
  );
  return holdRowToHold(row);
}

/** Charges all of an active hold, or `amount` of it (the rest goes back). Repeating returns the captured hold. */
export async function captureHold(db: AnyDb, holdId: string, amount?: number): Promise<Hold> {
  const charge = amount === undefined ? null : wholeCredits(amount, `capture of hold ${holdId}`);
  const row = await callOne<HoldRow>(
    db,
    sql`select * from credits.capture_hold(${holdIdParam(holdId)}::bigint, ${charge}::bigint)`,
  );
  return holdRowToHold(row);
}

/** Gives a hold's credit back; a no-op for a hold already released or expired. */
export async function releaseHold(db: AnyDb, holdId: string): Promise<Hold> {
  const row = await callOne<HoldRow>(db, sql`select * from credits.release_hold(${holdIdParam(holdId)}::bigint)`);
  return holdRowToHold(row);
}

/** Expires the hold if it is still active and due; otherwise returns it unchanged. */
export async function expireHold(db: AnyDb, holdId: string): Promise<Hold> {
  const row = await callOne<HoldRow>(db, sql`select * from credits.expire_hold(${holdIdParam(holdId)}::bigint)`);
  return holdRowToHold(row);
}

/**
 * One sweep batch: expires up to `batchSize` due holds of up to `maxAccounts` accounts, locking
 * each account and then its holds with SKIP LOCKED, in the caller's transaction. Returns 0
 * expired when nothing due could be locked. See expireDueHolds for the loop.
 */
export async function expireHoldsBatch(
  db: AnyDb,
  batchSize: number,
  maxAccounts = 50,
): Promise<{ expired: number; accounts: number }> {
  const row = await callOne<{ expired: number; accounts: number }>(
    db,
    sql`select * from credits.expire_holds_batch(${batchSize}::integer, ${maxAccounts}::integer)`,
  );
  return { expired: row.expired, accounts: row.accounts };
}

/**
 * Arms the expiry timer for the earliest active hold (not sooner than its resolution from now),
 * or within its resolution when `soon`. Also forgets a timer job that was lost, so the sweep
 * calling this heals the timer. Returns when it fires next, or null when no hold is active.
 */
export async function rearmExpiryTimer(db: AnyDb, options: { soon?: boolean } = {}): Promise<Date | null> {
  const row = await callOne<{ armed_at: Date | null }>(
    db,
    sql`select credits.rearm_expiry_timer(${options.soon ?? false}::boolean) as armed_at`,
  );
  return row.armed_at;
}

export interface ExpiryLag {
  /** Active holds past their expires_at: 0 but for a moment when expiry keeps up. */
  dueHolds: number;
  /** How long ago the oldest of them was due, in seconds (0 when none is). */
  oldestDueSeconds: number;
  /** When the expiry timer fires next; null when no hold is active (or a run is re-arming it). */
  timerArmedAt: Date | null;
}

/** The credits.expiry_lag view: is expiry on time right now? */
export async function getExpiryLag(db: AnyDb): Promise<ExpiryLag> {
  const row = await callOne<{ due_holds: string; oldest_due_seconds: number; timer_armed_at: Date | null }>(
    db,
    sql`select due_holds, extract(epoch from oldest_due_age)::float8 as oldest_due_seconds, timer_armed_at
          from credits.expiry_lag`,
  );
  return {
    dueHolds: toNumber(row.due_holds),
    oldestDueSeconds: row.oldest_due_seconds,
    timerArmedAt: row.timer_armed_at,
  };
}

/** Active holds past their expiry, and the credit they hold: what a sweep would expire now. */
export async function countDueHolds(db: AnyDb): Promise<{ holds: number; credits: number; accounts: number }> {
  const row = await callOne<{ holds: string; credits: string; accounts: string }>(
    db,
    sql`select count(*) as holds, coalesce(sum(amount), 0) as credits, count(distinct account_id) as accounts
          from credits.holds where state = 'active' and expires_at <= now()`,
  );
  return { holds: toNumber(row.holds), credits: toNumber(row.credits), accounts: toNumber(row.accounts) };
}

export interface AccountSummary {
  account: Account;
  /** Active holds first, then the most recent others. */
  holds: Hold[];
  /** Most recent first. */
  ledger: LedgerEntry[];
}

/** The account with its holds and recent ledger, or undefined when no such account exists. */
export async function getAccountSummary(
  db: Kysely<Database>,
  accountId: string,
  options: { holdLimit?: number; ledgerLimit?: number } = {},
): Promise<AccountSummary | undefined> {
  const account = await db.selectFrom("credits.accounts").selectAll().where("id", "=", accountId).executeTakeFirst();
  if (!account) return undefined;
  const [holds, ledger] = await Promise.all([
    db
      .selectFrom("credits.holds")
      .selectAll()
      .where("account_id", "=", accountId)
      .orderBy(sql`state = 'active'`, "desc")
      .orderBy("created_at", "desc")
      .orderBy("id", "desc")
      .limit(options.holdLimit ?? 50)
      .execute(),
    db
      .selectFrom("credits.ledger_entries")
      .selectAll()
      .where("account_id", "=", accountId)
      .orderBy("id", "desc")
      .limit(options.ledgerLimit ?? 20)
      .execute(),
  ]);
  return {
    account: accountRowToAccount(account),
    holds: holds.map(holdRowToHold),
    ledger: ledger.map(ledgerRowToEntry),
  };
}

export function holdRowToHold(row: HoldRow): Hold {
  return {
    id: String(row.id),
    accountId: row.account_id,
    amount: toNumber(row.amount),
    state: row.state,
    capturedAmount: row.captured_amount === null ? null : toNumber(row.captured_amount),
    expiresAt: row.expires_at,
    idempotencyKey: row.idempotency_key,
    createdAt: row.created_at,
    resolvedAt: row.resolved_at,
  };
}

export function ledgerRowToEntry(row: LedgerRow): LedgerEntry {
  return {
    id: String(row.id),
    accountId: row.account_id,
    kind: row.kind,
    amount: toNumber(row.amount),
    heldChange: toNumber(row.held_change),
    holdId: row.hold_id === null ? null : String(row.hold_id),
    idempotencyKey: row.idempotency_key,
    createdAt: row.created_at,
  };
}

export function accountRowToAccount(row: AccountRow): Account {
  const balance = toNumber(row.balance);
  const held = toNumber(row.held);
  return {
    id: row.id,
    balance,
    held,
    available: balance - held,
    ownerId: row.owner_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

async function callOne<Row>(db: AnyDb, query: RawBuilder<unknown>): Promise<Row> {
  let rows: Row[];
  try {
    rows = (await (query as RawBuilder<Row>).execute(db)).rows;
  } catch (error) {
    throw toCreditError(error);
  }
  const row = rows[0];
  if (row === undefined) {
    throw new Error("a credits function returned no row; are migrations 0003 and 0004 applied? Run pgjobs migrate.");
  }
  return row;
}

function wholeCredits(amount: number, what: string): number {
  if (!Number.isSafeInteger(amount)) {
    throw new InvalidCreditRequestError(
      `The amount for the ${what} must be a whole number of credits, got ${amount}; nothing was changed.`,
    );
  }
  return amount;
}

function holdIdParam(holdId: string): string {
  if (!/^\d{1,19}$/.test(String(holdId))) {
    throw new InvalidCreditRequestError(
      `"${holdId}" is not a credit hold id (a positive whole number); nothing was changed.`,
    );
  }
  return String(holdId);
}

/** Credits are bigint in SQL; beyond 2^53 a number would silently round, so refuse loudly. */
function toNumber(value: string | number): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number)) {
    throw new Error(`credit amount ${value} is beyond JavaScript's safe integer range; read it as a string instead`);
  }
  return number;
}
