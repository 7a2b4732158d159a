/**
 * One run of the expiry timer (the credits__expiry_timer job): expire what is due, then arm the
 * timer for the next active hold. One keyless job stands in the queue for all holds; place_hold
 * moves it earlier only when its hold expires first (migrations/0004_credits_on_time.sql has the
 * protocol and why each step is there).
 *
 * The step that is easy to get wrong is the race with place_hold: a hold placed while this run
 * is under way may have read the old armed time (so it armed nothing) and commit after this run
 * looked for the next hold (so the run does not see it). The run therefore notes the transactions
 * writing holds right after it begins, and waits for them to end before it looks.
 */
import { type Kysely, sql } from "kysely";
import type { CreditsDatabase as Database } from "./credits.tables.ts";
import { InvalidCreditRequestError } from "./credits.errors.ts";
import { rearmExpiryTimer } from "./credits.repository.ts";
import { type ExpireDueHoldsOptions, expireDueHolds } from "./expire-holds.service.ts";

export interface ExpiryTimerRunOptions extends Pick<ExpireDueHoldsOptions, "batchSize" | "maxAccounts" | "signal"> {
  /** The job running this, so the run can tell whether it is the armed timer. */
  jobId: string;
  /**
   * How long to wait for transactions that were writing holds when the run began. If some are
   * still open after it, the timer is armed to fire again within its resolution instead.
   * @defaultValue `1000`
   */
  settleMs?: number;
  /**
   * Batches per run; a backlog beyond it (after an outage) continues in the next run.
   * @defaultValue `200`
   */
  maxBatches?: number;
}

export interface ExpiryTimerRunResult {
  expired: number;
  batches: number;
  /** Transactions writing holds when the run began, and whether all had ended when it re-armed. */
  openWriters: number;
  settled: boolean;
  /** When the timer fires next (null: no active hold, nothing armed). */
  nextAt: Date | null;
}

const POLL_MS = 20;

export async function runExpiryTimer(
  db: Kysely<Database>,
  options: ExpiryTimerRunOptions,
): Promise<ExpiryTimerRunResult> {
  if (db.isTransaction) {
    throw new InvalidCreditRequestError(
      "runExpiryTimer commits step by step (its race protection depends on it); pass the pool-backed Kysely.",
    );
  }
  // 1 and 2: each statement commits before the next, and the order matters.
  await sql`select credits.begin_expiry_timer(${options.jobId}::bigint)`.execute(db);
  const { rows } = await sql<{ writers: string[] }>`select credits.open_hold_writers() as writers`.execute(db);
  const writers = rows[0]?.writers ?? [];

  const swept = await expireDueHolds(db, {
    batchSize: options.batchSize,
    maxAccounts: options.maxAccounts,
    maxBatches: options.maxBatches ?? 200,
    signal: options.signal,
  });

  const settled = await waitForTransactions(db, writers, options.settleMs ?? 1000, options.signal);
  const nextAt = await rearmExpiryTimer(db, { soon: !settled || swept.stoppedBy !== "nothing_left" });
  return { expired: swept.expired, batches: swept.batches, openWriters: writers.length, settled, nextAt };
}

/** Polls until none of the virtual transactions is open; false if some still are at the deadline. */
async function waitForTransactions(
  db: Kysely<Database>,
  virtualTransactions: string[],
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  if (virtualTransactions.length === 0) return true;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await sql<{ open: number }>`
      select credits.count_open(${virtualTransactions}::text[]) as open`.execute(db);
    if (rows[0]?.open === 0) return true;
    if (Date.now() >= deadline || signal?.aborted) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
