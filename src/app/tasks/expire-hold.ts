/**
 * `credits__expire_hold`: legacy. Before migration 0004, credits.place_hold scheduled one of
 * these per hold (job key `credits:hold:<id>`); holds placed since are expired by the expiry
 * timer (credits__expiry_timer) and get none. It stays registered so the jobs already queued
 * run and end: it expires the hold if it is still active and due, and otherwise succeeds having
 * done nothing. They are harmless to punctuality: the timer's priority puts it ahead of them.
 * Remove this task once no such job is left (`select count(*) from graphile_worker.jobs where
 * task_identifier = 'credits__expire_hold'`).
 */
import { z } from "zod";
import { expireHold } from "../credits/credits.repository.ts";
import { defineAppTask } from "./define-app-task.ts";

export const expireHoldTask = defineAppTask({
  name: "credits__expire_hold",
  payload: z.object({
    // The old place_hold wrote a JSON number; a string of digits is accepted too (ids are bigint).
    holdId: z.union([z.string().regex(/^\d{1,19}$/, "must be a hold id (digits)"), z.number().int().positive()]),
  }),
  options: { maxAttempts: 5, transactional: true },
  async run(payload, ctx) {
    const hold = await expireHold(ctx.db, String(payload.holdId));
    if (hold.state === "active") {
      // Runs at expires_at, so this means the job ran early (clock skew or a manual run).
      ctx.logger.warn({ holdId: hold.id, expiresAt: hold.expiresAt }, `credit hold ${hold.id} is not due yet`);
    }
    return { holdId: hold.id, state: hold.state };
  },
});
