/**
 * Everything a database needs before workers or the app use it: graphile-worker's and pgjobs'
 * migrations, then the task registry written from the TypeScript task list.
 */
import type pg from "pg";
import type { Db } from "./db/connection.ts";
import { migrate, type MigrateResult } from "./db/migrate.ts";
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
