/**
 * The expiry sweep: the safety net behind each hold's own expiry job (River's JobCleaner,
 * Oban's Pruner). Expires due holds in bounded batches, one short transaction per batch, so a
 * sweep over a million holds never holds a long transaction or many locks, and a sweep that dies
 * loses one batch at most (it rolls back; the next sweep takes it again).
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
   * Stop after this many batches even if due holds remain; the next sweep continues.
   * @defaultValue `10000`
   */
  maxBatches?: number;
  /** Checked between batches: stop (after committing the current batch) when aborted. */
  signal?: AbortSignal;
  /**
   * Runs inside each batch's transaction after the batch statement, before the commit. For
   * tests that need a sweep stopped mid-batch; a throw rolls that batch back.
   */
  inBatch?: (trx: Transaction<Database>, batch: { index: number; expired: number }) => Promise<void>;
}

export interface ExpireDueHoldsResult {
  expired: number;
  batches: number;
  /** Why the loop ended: nothing lockable left, the signal, or maxBatches. */
  stoppedBy: "short_batch" | "signal" | "max_batches";
}

/** Loops expire_holds_batch until a batch comes back short. `db` must not be a transaction. */
export async function expireDueHolds(
  db: Kysely<Database>,
  options: ExpireDueHoldsOptions = {},
): Promise<ExpireDueHoldsResult> {
  const batchSize = options.batchSize ?? 1000;
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
      const result = await expireHoldsBatch(trx, batchSize);
      await options.inBatch?.(trx, { index, expired: result.expired });
      return result;
    });
    expired += batch.expired;
    batches += 1;
    // LIMIT counts only holds the batch could lock, so fewer than batchSize means none are left.
    if (batch.expired < batchSize) return { expired, batches, stoppedBy: "short_batch" };
  }
}
