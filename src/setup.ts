/**
 * Everything a database needs before workers or the app use it: graphile-worker's and pgjobs'
 * migrations, then the task registry written from the TypeScript task list.
 */
import type pg from "pg";
import type { Db } from "./db/connection.ts";
import { migrate, type MigrateResult, pendingMigrations } from "./db/migrate.ts";
import { syncTaskRegistry } from "./enqueue/task-registry.ts";
import type { Logger } from "./logger.ts";
import type { TaskDefinition } from "./tasks/define-task.ts";

export async function prepareDatabase(
  pool: pg.Pool,
  db: Db,
  logger: Logger,
  tasks?: readonly TaskDefinition[],
): Promise<MigrateResult & { tasks: string[] }> {
  const migrated = await migrate(pool, logger);
  const { registered, removed } = await syncTaskRegistry(db, tasks);
  if (removed.length > 0) {
    logger.warn({ removed }, `tasks no longer in the code were removed from the SQL allowlist: ${removed.join(", ")}`);
  }
  return { ...migrated, tasks: registered };
}

/**
 * For a worker that must not migrate (behind a transaction pooler): refuses to start on a
 * database whose migrations are not all applied, saying how to apply them.
 */
export async function assertMigrated(db: Db): Promise<void> {
  const pending = await pendingMigrations(db);
  if (pending.length > 0) {
    throw new Error(
      `The database is missing ${pending.length} migration(s) (${pending.join(", ")}). Run \`pgjobs migrate\` ` +
        "over a direct connection (not the transaction pooler), then start the worker again.",
    );
  }
}
