/**
 * What every CLI command that needs the database sets up, and tears down in reverse order.
 */
import type pg from "pg";
import type { Config } from "../config.ts";
import type { Project } from "../project.ts";
import type { TaskRegistry } from "../tasks/task-registry.ts";
import { createDb, createPool, type Db } from "../db/connection.ts";
import { resolveDatabase } from "../db/database.ts";
import type { Logger } from "../logger.ts";

/** What every command gets: the environment's settings, the log, and the app it works for. */
export interface CliContext {
  config: Config;
  logger: Logger;
  project: Project;
  registry: TaskRegistry;
}

export interface DatabaseSession {
  /** The connection URL in use (DATABASE_URL, or the embedded server's). */
  url: string;
  pool: pg.Pool;
  db: Db;
  embedded: boolean;
  close(): Promise<void>;
}

const POOL_END_LIMIT_MS = 3000;

export async function openDatabase(
  { config, logger }: Pick<CliContext, "config" | "logger">,
  options: {
    poolSize?: number;
    applicationName?: string;
    onConnectionLost?: (error: Error) => void;
    /** A long-running command: its log tells the story of the shared embedded server at info. */
    narrate?: boolean;
  } = {},
): Promise<DatabaseSession> {
  const target = await resolveDatabase(config, logger, { narrate: options.narrate });
  const pool = createPool(target.url, {
    max: options.poolSize,
    applicationName: options.applicationName,
    onIdleError: options.onConnectionLost,
  });
  const db = createDb(pool);
  let closed = false;
  return {
    url: target.url,
    pool,
    db,
    embedded: target.embedded,
    async close() {
      if (closed) return;
      closed = true;
      // Not db.destroy(): kysely only ends a pool it has used, and graphile-worker shares it.
      // Bounded: pool.end() waits for every checked-out client, and a hung task may never
      // give its back. The process is about to exit; its sockets close with it.
      await Promise.race([pool.end(), new Promise((resolve) => setTimeout(resolve, POOL_END_LIMIT_MS).unref())]);
      await target.release();
    },
  };
}

/** Runs `work` with a small session (read commands, one action), closed whatever happens. */
export async function withDatabase<T>(
  cli: Pick<CliContext, "config" | "logger">,
  applicationName: string,
  work: (session: DatabaseSession) => Promise<T>,
): Promise<T> {
  const session = await openDatabase(cli, { poolSize: 2, applicationName });
  try {
    return await work(session);
  } finally {
    await session.close();
  }
}
