/**
 * What every CLI command that needs the database sets up, and tears down in reverse order.
 */
import type pg from "pg";
import type { Config } from "../config.ts";
import { createDb, createPool, type Db } from "../db/connection.ts";
import { resolveDatabase } from "../db/database.ts";
import type { Logger } from "../logger.ts";

export interface DatabaseSession {
  pool: pg.Pool;
  db: Db;
  embedded: boolean;
  close(): Promise<void>;
}

export async function openDatabase(
  config: Config,
  logger: Logger,
  options: { poolSize?: number; applicationName?: string; onConnectionLost?: (error: Error) => void } = {},
): Promise<DatabaseSession> {
  const target = await resolveDatabase(config, logger);
  const pool = createPool(target.url, {
    max: options.poolSize,
    applicationName: options.applicationName,
    onIdleError: options.onConnectionLost,
  });
  const db = createDb(pool);
  let closed = false;
  return {
    pool,
    db,
    embedded: target.embedded,
    async close() {
      if (closed) return;
      closed = true;
      // Not db.destroy(): kysely only ends a pool it has used, and graphile-worker shares it.
      await pool.end();
      await target.release();
    },
  };
}
