/**
 * `pgjobs run <task> <json>`: run one task now, in this process, without the queue (Celery's
 * `task.apply()`); prints its result. For support and for trying a task by hand.
 */
import { runTaskInline } from "../../runner/run-inline.ts";
import { type CliContext, openDatabase } from "../context.ts";
import { readPayloadArgument } from "./add.ts";

export async function runCommand(
  cli: CliContext,
  args: { taskName: string; payloadJson: string; json: boolean },
): Promise<number> {
  const task = cli.registry.get(args.taskName);
  const payload = await readPayloadArgument("run", args.taskName, args.payloadJson);
  const session = await openDatabase(cli, { poolSize: 2, applicationName: "pgjobs run" });
  try {
    const result = await runTaskInline(session.db, task, payload, { logger: cli.logger });
    console.log(args.json ? JSON.stringify({ result }) : `${args.taskName} returned: ${JSON.stringify(result)}`);
    return 0;
  } finally {
    await session.close();
  }
}
