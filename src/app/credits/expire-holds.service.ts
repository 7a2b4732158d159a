/**
 * The expiry sweep (River's JobCleaner, Oban's Pruner): expires due holds in bounded batches,
 * one short transaction per batch, so a sweep over a million holds never holds a long
 * transaction, and a sweep that dies loses one batch at most (it rolls back; the next sweep takes
 * it again). The expiry timer runs it for what is due now; the 3-hourly crontab sweep is the
 * safety net. Each batch locks only a few accounts (see credits.expire_holds_batch), so captures
 * on other accounts never wait on it.
 */
import type { Kysely, Transaction } from "kysely";
import type { CreditsDatabase as Database } from "./credits.tables.ts";
import { InvalidCreditRequestError } from "./credits.errors.ts";
import { expireHoldsBatch } from "./credits.repository.ts";

export interface ExpireDueHoldsOptions {
  /**
   * Holds expired per transaction. Keep it small enough that a batch finishes well under
   * statement_timeout and holds few locks at once.
   * @defaultValue `1000`
   */
  batchSize?: number;
  /**
   * Accounts a batch may lock. A capture on one of them waits for the batch to commit, so fewer
   * is gentler on captures; a batch takes only as many as its holds need (about
   * batchSize ÷ due holds per account), this caps it when accounts have few due holds each.
   * @defaultValue `50`
   */
  maxAccounts?: number;
  /**
   * Stop after this many batches even if due holds remain; the next sweep continues.
   * @defaultValue `10000`
   */
  maxBatches?: number;
  /** Checked between batches: stop (after committing the current batch) when aborted. */
  signal?: AbortSignal;
  /**
   * Runs inside each batch's transaction (that expired something) after the batch statement,
   * before the commit. For tests that need a sweep stopped mid-batch; a throw rolls it back.
   */
  inBatch?: (trx: Transaction<Database>, batch: { index: number; expired: number }) => Promise<void>;
}

export interface ExpireDueHoldsResult {
  expired: number;
  /** Batches that expired at least one hold. */
  batches: number;
  /** Why the loop ended: nothing due it could lock, the signal, or maxBatches. */
  stoppedBy: "nothing_left" | "signal" | "max_batches";
}

export const DEFAULT_SWEEP_BATCH_SIZE = 1000;
export const DEFAULT_SWEEP_MAX_ACCOUNTS = 50;

/** Loops expire_holds_batch until a batch expires nothing. `db` must not be a transaction. */
export async function expireDueHolds(
  db: Kysely<Database>,
  options: ExpireDueHoldsOptions = {},
): Promise<ExpireDueHoldsResult> {
  const batchSize = options.batchSize ?? DEFAULT_SWEEP_BATCH_SIZE;
  const maxAccounts = options.maxAccounts ?? DEFAULT_SWEEP_MAX_ACCOUNTS;
  const maxBatches = options.maxBatches ?? 10_000;
  if (db.isTransaction) {
    throw new InvalidCreditRequestError(
      "expireDueHolds commits one transaction per batch; pass the pool-backed Kysely, not a transaction " +
        "(inside a transaction, call expireHoldsBatch instead).",
    );
  }
  let expired = 0;
  let batches = 0;
  for (;;) {
    if (options.signal?.aborted) return { expired, batches, stoppedBy: "signal" };
    if (batches >= maxBatches) return { expired, batches, stoppedBy: "max_batches" };
    const index = batches;
    const batch = await db.transaction().execute(async (trx) => {
      const result = await expireHoldsBatch(trx, batchSize, maxAccounts);
      if (result.expired > 0) await options.inBatch?.(trx, { index, expired: result.expired });
      return result;
    });
    // A batch can be short and still leave due holds (it stops at maxAccounts accounts), so only
    // an empty one means nothing due is left that could be locked now.
    if (batch.expired === 0) return { expired, batches, stoppedBy: "nothing_left" };
    expired += batch.expired;
    batches += 1;
  }
}
