/**
 * `credits__expire_hold`: scheduled by credits.place_hold for the hold's expires_at (job key
 * `credits:hold:<id>`). Expires the hold if it is still active; after a capture or release it
 * finds nothing to do and succeeds.
 */
import { z } from "zod";
import { expireHold } from "../credits/credits.repository.ts";
import { defineAppTask } from "./define-app-task.ts";

export const expireHoldTask = defineAppTask({
  name: "credits__expire_hold",
  payload: z.object({
    // place_hold writes a JSON number; a string of digits is accepted too (ids are bigint).
    holdId: z.union([z.string().regex(/^\d{1,19}$/, "must be a hold id (digits)"), z.number().int().positive()]),
  }),
  options: { maxAttempts: 5, transactional: true },
  async run(payload, ctx) {
    const hold = await expireHold(ctx.db, String(payload.holdId));
    if (hold.state === "active") {
      // Runs at expires_at, so this means the job ran early (clock skew) or the hold was extended.
      ctx.logger.warn({ holdId: hold.id, expiresAt: hold.expiresAt }, `credit hold ${hold.id} is not due yet`);
    }
    return { holdId: hold.id, state: hold.state };
  },
});
