/**
 * `credits__expire_holds`: the 3-hourly sweep from the crontab, the safety net behind the expiry
 * timer (credits__expiry_timer). It expires whatever is due, then re-arms the timer, which also
 * replaces a timer job that was lost. Commits batch by batch, so it is not transactional: a sweep
 * stopped part way keeps what it finished.
 */
import { z } from "zod";
import { rearmExpiryTimer } from "../credits/credits.repository.ts";
import {
  DEFAULT_SWEEP_BATCH_SIZE,
  DEFAULT_SWEEP_MAX_ACCOUNTS,
  expireDueHolds,
} from "../credits/expire-holds.service.ts";
import { defineAppTask } from "./define-app-task.ts";

export const expireHoldsTask = defineAppTask({
  name: "credits__expire_holds",
  // Not strict: graphile-worker's cron adds `_cron` to the payload.
  payload: z.object({
    batchSize: z.number().int().min(1).max(100_000).default(DEFAULT_SWEEP_BATCH_SIZE),
    maxAccounts: z.number().int().min(1).max(10_000).default(DEFAULT_SWEEP_MAX_ACCOUNTS),
    maxBatches: z.number().int().min(1).default(10_000),
  }),
  options: { transactional: false, maxAttempts: 5 },
  async run(payload, ctx) {
    const outcome = await expireDueHolds(ctx.db, {
      batchSize: payload.batchSize,
      maxAccounts: payload.maxAccounts,
      maxBatches: payload.maxBatches,
      signal: ctx.signal,
    });
    const nextAt = await rearmExpiryTimer(ctx.db);
    if (outcome.expired > 0 || outcome.stoppedBy !== "nothing_left") {
      const why =
        outcome.stoppedBy === "signal"
          ? "; stopped early because the worker is shutting down, the next sweep continues"
          : outcome.stoppedBy === "max_batches"
            ? `; stopped at maxBatches (${payload.maxBatches}) with due holds left, the next sweep continues`
            : "";
      ctx.logger.info(outcome, `expired ${outcome.expired} credit holds in ${outcome.batches} batch(es)${why}`);
    }
    return { expired: outcome.expired, batches: outcome.batches, timerNextAt: nextAt?.toISOString() ?? null };
  },
});
