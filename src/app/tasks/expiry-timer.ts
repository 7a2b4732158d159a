/**
 * `credits__expiry_timer`: the one job that expires holds on time. credits.place_hold arms it
 * for the earliest active hold (moving it earlier only when a new hold expires first); each run
 * expires what is due and re-arms it for the next hold. Priority -10, set where it is armed in
 * SQL, so workers fetch it ahead of ordinary (priority 0) jobs however many are waiting.
 * Not transactional: the run commits step by step (src/app/credits/expiry-timer.service.ts).
 */
import { z } from "zod";
import { runExpiryTimer } from "../credits/expiry-timer.service.ts";
import { defineAppTask } from "./define-app-task.ts";

export const expiryTimerTask = defineAppTask({
  name: "credits__expiry_timer",
  payload: z.object({
    batchSize: z.number().int().min(1).max(100_000).optional(),
    maxAccounts: z.number().int().min(1).max(10_000).optional(),
  }),
  options: { transactional: false, maxAttempts: 25 },
  async run(payload, ctx) {
    const outcome = await runExpiryTimer(ctx.db, {
      jobId: ctx.job.id,
      batchSize: payload.batchSize,
      maxAccounts: payload.maxAccounts,
      signal: ctx.signal,
    });
    if (!outcome.settled) {
      ctx.logger.info(
        outcome,
        `${outcome.openWriters} transaction(s) writing credit holds were still open after the wait; ` +
          "the timer runs again within its resolution to pick up their holds",
      );
    }
    return { expired: outcome.expired, nextAt: outcome.nextAt?.toISOString() ?? null };
  },
});
