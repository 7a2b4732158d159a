/**
 * `pgjobs migrate`: graphile-worker's, pgjobs' and the app's migrations, then the app's tasks
 * registered for SQL enqueue. `--sql` prints the same migrations as one SQL script instead, for
 * teams whose schema lives in their own migration tool (supabase/migrations): nothing connects.
 */
import { exportSchemaSql } from "../../db/export-sql.ts";
import { prepareDatabase } from "../../setup.ts";
import { type CliContext, openDatabase } from "../context.ts";

export async function migrateCommand(cli: CliContext, output: { json: boolean; sql: boolean }): Promise<number> {
  const { project } = cli;
  if (output.sql) {
    process.stdout.write(await exportSchemaSql(project.migrationsDir));
    return 0;
  }
  const session = await openDatabase(cli, { poolSize: 2, applicationName: "pgjobs migrate" });
  try {
    const result = await prepareDatabase(session.pool, session.db, cli.logger, {
      tasks: project.tasks,
      appMigrationsDir: project.migrationsDir,
      lockTimeoutMs: cli.config.migrationLockTimeoutMs,
    });
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
