/**
 * `credits__expire_holds`: the 3-hourly sweep from the crontab. Each hold also has its own expiry
 * job; this catches any hold whose job was lost or failed. Commits batch by batch, so it is not
 * transactional: a sweep stopped part way keeps what it finished.
 */
import { z } from "zod";
import { expireDueHolds } from "../credits/expire-holds.service.ts";
import { defineAppTask } from "./define-app-task.ts";

export const expireHoldsTask = defineAppTask({
  name: "credits__expire_holds",
  // Not strict: graphile-worker's cron adds `_cron` to the payload.
  payload: z.object({
    batchSize: z.number().int().min(1).max(100_000).default(1000),
    maxBatches: z.number().int().min(1).default(10_000),
  }),
  options: { transactional: false, maxAttempts: 5 },
  async run(payload, ctx) {
    const outcome = await expireDueHolds(ctx.db, {
      batchSize: payload.batchSize,
      maxBatches: payload.maxBatches,
      signal: ctx.signal,
    });
    if (outcome.expired > 0 || outcome.stoppedBy !== "short_batch") {
      const why =
        outcome.stoppedBy === "signal"
          ? "; stopped early because the worker is shutting down, the next sweep continues"
          : outcome.stoppedBy === "max_batches"
            ? `; stopped at maxBatches (${payload.maxBatches}) with due holds left, the next sweep continues`
            : "";
      ctx.logger.info(outcome, `expired ${outcome.expired} credit holds in ${outcome.batches} batch(es)${why}`);
    }
    return { expired: outcome.expired, batches: outcome.batches };
  },
});
