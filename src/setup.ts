/**
 * Everything a database needs before workers or the app use it: graphile-worker's, pgjobs' and
 * the app's migrations, then the app's tasks registered for SQL enqueue.
 */
import type pg from "pg";
import type { Db } from "./db/connection.ts";
import { migrate, type MigrateOptions, type MigrateResult, pendingMigrations } from "./db/migrate.ts";
import { syncTaskRegistry } from "./enqueue/sql-allowlist.ts";
import type { Logger } from "./logger.ts";
import type { TaskList } from "./tasks/task-registry.ts";

export async function prepareDatabase(
  pool: pg.Pool,
  db: Db,
  logger: Logger,
  app: { tasks: TaskList } & MigrateOptions = { tasks: [] },
): Promise<MigrateResult & { tasks: string[] }> {
  const migrated = await migrate(pool, logger, app);
  const { registered } = await syncTaskRegistry(db, app.tasks);
  return { ...migrated, tasks: registered };
}

/**
 * For a worker that does not migrate (behind a transaction pooler, or under the graphile-worker
 * CLI): refuses to start on a database whose migrations are not all applied, saying how to
 * apply them. `advice` ends the message: what to run, and how.
 */
export async function assertMigrated(
  db: Db,
  appMigrationsDir?: string,
  advice = "Run `pgjobs migrate` over a direct connection (not the transaction pooler), then start the worker again.",
): Promise<void> {
  const pending = await pendingMigrations(db, appMigrationsDir);
  if (pending.length > 0) {
    throw new Error(`The database is missing ${pending.length} migration(s) (${pending.join(", ")}). ${advice}`);
  }
}
