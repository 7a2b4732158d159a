/**
 * `pgjobs__prune_history`: retention for job history, run hourly from the crontab. Ages per state
 * come from the payload (the crontab line), so each deployment chooses how long it keeps what.
 */
import { z } from "zod";
import { pruneHistory, retentionSchema } from "../../history/prune.ts";
import type { Database } from "../../db/schema.ts";
import { defineTaskFor } from "../define-task.ts";

export const pruneHistoryTask = defineTaskFor<Database>()({
  name: "pgjobs__prune_history",
  payload: z.object({
    keep: retentionSchema.default(retentionSchema.parse({})),
    batchSize: z.number().int().min(1).max(100_000).default(5000),
    maxBatches: z.number().int().min(1).default(1000),
  }),
  // Commits batch by batch, so a long prune never holds one big transaction.
  options: { transactional: false, maxAttempts: 3, queue: "pgjobs_maintenance" },
  async run(payload, ctx) {
    const outcome = await pruneHistory(ctx.db, payload.keep, {
      batchSize: payload.batchSize,
      maxBatches: payload.maxBatches,
      signal: ctx.signal,
    });
    ctx.logger.info(outcome, `pruned ${outcome.deleted} finished job runs in ${outcome.batches} batch(es)`);
    return outcome;
  },
});
