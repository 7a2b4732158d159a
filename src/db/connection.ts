/**
 * One pg pool per process, and the kysely instance over it. Every module that talks to the
 * database takes a `Kysely<Database>` (or a transaction of one) as its first argument rather than
 * importing a global, so tests and the app's own transactions can be passed in.
 */
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { Database } from "./schema.ts";

export type Db = Kysely<Database>;

// BIGINT (job ids, amounts) must not lose precision as JS numbers: keep int8 as strings.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => value);

export function createPool(
  connectionString: string,
  options: { max?: number; applicationName?: string; onIdleError?: (error: Error) => void } = {},
) {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? "pgjobs",
  });
  // An idle client losing its connection (server restart, failover) would otherwise crash the
  // process through an unhandled 'error' event; the owner decides (the worker exits non-zero).
  const onError = options.onIdleError ?? (() => {});
  pool.on("error", onError);
  // A checked-out client's connection can drop too; its query fails, and the owner hears why.
  pool.on("connect", (client) => client.on("error", onError));
  return pool;
}

export function createDb(pool: pg.Pool): Db {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
