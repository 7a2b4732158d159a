/**
 * `pgjobs run <task> <json>`: run one task now, in this process, without the queue (Celery's
 * `task.apply()`); prints its result. For support and for trying a task by hand.
 */
import type { Config } from "../../config.ts";
import { validatePayload } from "../../enqueue/enqueue.ts";
import type { Logger } from "../../logger.ts";
import type { TaskName } from "../../tasks/index.ts";
import { runInline } from "../../runner/run-inline.ts";
import { openDatabase } from "../context.ts";
import { readPayloadArgument } from "./add.ts";

export async function runCommand(
  config: Config,
  logger: Logger,
  args: { taskName: string; payloadJson: string; json: boolean },
): Promise<number> {
  const payload = await readPayloadArgument("run", args.taskName, args.payloadJson);
  validatePayload(args.taskName, payload);
  const session = await openDatabase(config, logger, { poolSize: 2, applicationName: "pgjobs run" });
  try {
    const result = await runInline(session.db, args.taskName as TaskName, payload as never, { logger });
    console.log(args.json ? JSON.stringify({ result }) : `${args.taskName} returned: ${JSON.stringify(result)}`);
    return 0;
  } finally {
    await session.close();
  }
}
