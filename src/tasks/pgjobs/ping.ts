/**
 * `pgjobs__ping`: writes its message into pgjobs.pings. The smallest job with a visible effect:
 * use it to check that a deployment's enqueue → worker → database path works end to end.
 */
import { z } from "zod";
import { defineTask } from "../define-task.ts";

export const pingTask = defineTask({
  name: "pgjobs__ping",
  payload: z.object({
    message: z.string().min(1).max(1000),
  }),
  options: { maxAttempts: 3, transactional: true },
  async run(payload, ctx) {
    const row = await ctx.db
      .insertInto("pgjobs.pings")
      .values({ message: payload.message, job_id: ctx.job.id })
      .returning(["id"])
      .executeTakeFirstOrThrow();
    ctx.logger.info({ pingId: row.id }, `pong: ${payload.message}`);
    return { pingId: row.id, message: payload.message };
  },
});
