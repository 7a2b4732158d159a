/**
 * One pg pool per process, and the kysely instance over it. Every module that talks to the
 * database takes a `Kysely<Database>` (or a transaction of one) as its first argument rather than
 * importing a global, so tests and the app's own transactions can be passed in.
 */
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { Database } from "./schema.ts";

export type Db = Kysely<Database>;

/** `connectionString` undefined: pg's PG* environment variables, as graphile-worker does. */
export function createPool(
  connectionString: string | undefined,
  options: { max?: number; applicationName?: string; onIdleError?: (error: Error) => void } = {},
) {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? "pgjobs",
  });
  // An idle client losing its connection (server restart, failover) would otherwise crash the
  // process through an unhandled 'error' event; the owner decides (the worker exits non-zero).
  // A connection pgjobs ended on purpose (a job's transaction past its deadline) is not news.
  const onError = (error: Error, client?: pg.ClientBase) => {
    if (client && endedOnPurpose.has(client)) return;
    options.onIdleError?.(error);
  };
  pool.on("error", onError);
  // A checked-out client's connection can drop too; its query fails, and the owner hears why.
  pool.on("connect", (client) => client.on("error", (error) => onError(error, client)));
  return pool;
}

const endedOnPurpose = new WeakSet<pg.ClientBase>();

/** Marks a client whose connection pgjobs is about to end itself, so its loss is not reported. */
export function releaseDeliberately(client: pg.ClientBase): void {
  endedOnPurpose.add(client);
}

export function createDb(pool: pg.Pool): Db {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * A Kysely whose only connection is `client`, which its owner checked out and releases (kysely
 * never does): a job's transaction, or graphile-worker's migration client.
 */
export function dbOverClient(client: pg.ClientBase): Db {
  const borrowed = { query: client.query.bind(client), release: () => {} };
  return new Kysely<Database>({
    dialect: new PostgresDialect({
      pool: { connect: () => Promise.resolve(borrowed), end: () => Promise.resolve() } as never,
    }),
  });
}
