import type { Config } from "../../config.ts";
import { startDashboard } from "../../dashboard/index.ts";
import type { Logger } from "../../logger.ts";
import { loadCrontab } from "../../runner/worker.ts";
import { pendingMigrations } from "../../db/migrate.ts";
import type { TaskDefinition } from "../../tasks/define-task.ts";
import { tasks as registeredTasks } from "../../tasks/index.ts";
import { openDatabase } from "../context.ts";
import { EXIT } from "../exit-codes.ts";

/**
 * `pgjobs dashboard`: serves the dashboard and /metrics until SIGINT/SIGTERM. It never migrates
 * (it may run with fewer rights than a worker); it refuses a database that is not migrated.
 */
export async function dashboardCommand(
  config: Config,
  logger: Logger,
  app: { tasks?: readonly TaskDefinition[]; crontab?: string } = {},
): Promise<number> {
  const session = await openDatabase(config, logger, { poolSize: 10, applicationName: "pgjobs dashboard" });
  try {
    const pending = await pendingMigrations(session.db);
    if (pending.length > 0) {
      logger.fatal(
        `the database is missing ${pending.length} migration(s) (${pending.join(", ")}); run \`pgjobs migrate\` ` +
          "(or start a worker, which migrates), then start the dashboard again",
      );
      return EXIT.FAILURE;
    }
    const credentials = { token: config.dashboard.token, basic: config.dashboard.basic };
    const dashboard = await startDashboard({
      db: session.db,
      tasks: app.tasks ?? registeredTasks,
      crontab: app.crontab ?? (await loadCrontab()),
      credentials,
      logger,
      port: config.dashboard.port,
      host: config.dashboard.host,
      livenessTimeoutMs: config.livenessTimeoutMs,
    });
    const acting =
      config.dashboard.token || config.dashboard.basic
        ? "actions need the configured credential"
        : "read-only: no credential configured";
    logger.info(
      { url: dashboard.url },
      `dashboard listening on ${dashboard.url} (${acting}); metrics at ${dashboard.url}/metrics`,
    );
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    logger.info(`${signal}: stopping the dashboard`);
    await dashboard.close();
    return EXIT.OK;
  } finally {
    await session.close();
  }
}
