import type { Config } from "../../config.ts";
import type { Logger } from "../../logger.ts";
import { prepareDatabase } from "../../setup.ts";
import { openDatabase } from "../context.ts";

export async function migrateCommand(config: Config, logger: Logger, output: { json: boolean }): Promise<number> {
  const session = await openDatabase(config, logger, { poolSize: 2, applicationName: "pgjobs migrate" });
  try {
    const result = await prepareDatabase(session.pool, session.db, logger);
    if (output.json) {
      console.log(JSON.stringify(result));
    } else {
      console.log(
        result.applied.length === 0
          ? `Database is up to date (${result.alreadyApplied} migrations already applied); ${result.tasks.length} tasks registered.`
          : `Applied ${result.applied.length} migration(s): ${result.applied.join(", ")}; ${result.tasks.length} tasks registered.`,
      );
    }
    return 0;
  } finally {
    await session.close();
  }
}
