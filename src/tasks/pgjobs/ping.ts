/**
 * `pgjobs__ping`: answers with its message. The smallest job there is, for checking that a
 * deployment's enqueue → worker → history path works end to end (`pgjobs add pgjobs__ping
 * '{"message":"hi"}'`, then `pgjobs result <id>`). Opt in by adding it to the app's tasks.
 */
import { z } from "zod";
import { defineTask } from "../define-task.ts";

export const pingTask = defineTask({
  name: "pgjobs__ping",
  payload: z.object({
    message: z.string().min(1).max(1000),
  }),
  options: { maxAttempts: 3 },
  run(payload, ctx) {
    ctx.logger.info(`pong: ${payload.message}`);
    return Promise.resolve({ pong: payload.message });
  },
});
