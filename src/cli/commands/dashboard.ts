import { startDashboard } from "../../dashboard/index.ts";
import { pendingMigrations } from "../../db/migrate.ts";
import { type CliContext, openDatabase } from "../context.ts";
import { EXIT } from "../exit-codes.ts";

/**
 * `pgjobs dashboard`: serves the dashboard and /metrics for the app's tasks and crontab until
 * SIGINT/SIGTERM. It never migrates (it may run with fewer rights than a worker); it refuses a
 * database that is not migrated.
 */
export async function dashboardCommand({ config, logger, project }: CliContext): Promise<number> {
  const session = await openDatabase({ config, logger }, { poolSize: 10, applicationName: "pgjobs dashboard" });
  try {
    const pending = await pendingMigrations(session.db, project.migrationsDir);
    if (pending.length > 0) {
      logger.fatal(
        `the database is missing ${pending.length} migration(s) (${pending.join(", ")}); run \`pgjobs migrate\` ` +
          "(or start a worker, which migrates), then start the dashboard again",
      );
      return EXIT.FAILURE;
    }
    const dashboard = await startDashboard({
      db: session.db,
      tasks: project.tasks,
      crontab: project.crontab,
      credentials: { token: config.dashboard.token, basic: config.dashboard.basic },
      pages: config.dashboard.pages,
      logger,
      port: config.dashboard.port,
      host: config.dashboard.host,
      livenessTimeoutMs: config.livenessTimeoutMs,
      appMigrationsDir: project.migrationsDir,
    });
    const acting = !(config.dashboard.token || config.dashboard.basic)
      ? "read-only: no credential configured"
      : config.dashboard.pages === "public"
        ? "pages public (PGJOBS_DASHBOARD_PAGES=public), actions need the configured credential"
        : "pages and actions need the configured credential";
    logger.info(
      { url: dashboard.url },
      `dashboard listening on ${dashboard.url} (${acting}); metrics at ${dashboard.url}/metrics`,
    );
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      const onSignal = (received: NodeJS.Signals) => {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        resolve(received);
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
    });
    logger.info(`${signal}: stopping the dashboard`);
    await dashboard.close();
    return EXIT.OK;
  } finally {
    await session.close();
  }
}
