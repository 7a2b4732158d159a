/**
 * Scratch databases for the credits benchmark: migrated ones, a generated population of holds in
 * a template, and per-run clones of it (CREATE DATABASE … STRATEGY file_copy: a copy of the
 * files, a second or two even for a million holds, with the template's statistics).
 */
import { randomBytes } from "node:crypto";
import { type Kysely, sql } from "kysely";
import pg from "pg";
import { createDb, createPool, type Db } from "../../src/db/connection.ts";
import { tasks as appTasks } from "../../src/app/tasks/index.ts";
import type { Logger } from "../../src/logger.ts";
import { prepareDatabase } from "../../src/setup.ts";
import type { TaskDefinition } from "../../src/tasks/define-task.ts";
import { databaseUrl, dropDatabase } from "../../src/testing/test-database.ts";

/** The credits app's migrations (the repository's top-level folder). */
const APP_MIGRATIONS_DIR = new URL("../../migrations/", import.meta.url).pathname;

export interface Scratch {
  name: string;
  pool: pg.Pool;
  db: Db;
  close(): Promise<void>;
}

async function admin(serverUrl: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl, application_name: "pgjobs bench admin" });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

export function scratchName(role: string): string {
  return `pgjobs_bench_${role}_${randomBytes(4).toString("hex")}`;
}

export function open(serverUrl: string, name: string, max = 6): Scratch {
  const pool = createPool(databaseUrl(serverUrl, name), { max, applicationName: "pgjobs bench" });
  return { name, pool, db: createDb(pool), close: () => pool.end() };
}

/** A new database with every migration applied and the task allowlist written (plus `tasks`). */
export async function createMigrated(
  serverUrl: string,
  role: string,
  logger: Logger,
  tasks?: readonly TaskDefinition[],
): Promise<Scratch> {
  const name = scratchName(role);
  await admin(serverUrl, `create database ${pg.escapeIdentifier(name)}`);
  const scratch = open(serverUrl, name);
  await prepareDatabase(scratch.pool, scratch.db, logger, {
    tasks: tasks ?? appTasks,
    appMigrationsDir: APP_MIGRATIONS_DIR,
  });
  return scratch;
}

export async function cloneOf(serverUrl: string, template: string, role: string): Promise<Scratch> {
  const name = scratchName(role);
  await admin(
    serverUrl,
    `create database ${pg.escapeIdentifier(name)} template ${pg.escapeIdentifier(template)} strategy file_copy`,
  );
  return open(serverUrl, name);
}

export async function drop(serverUrl: string, scratch: Scratch): Promise<void> {
  await scratch.close();
  await dropDatabase(serverUrl, scratch.name);
}

/**
 * `holds` holds on `accounts` accounts, inserted set-based as if placed over the last hours:
 * every other round of accounts due (expires_at in the last hour, oldest first by id), the rest
 * due over the next three days. Each account's balance covers its holds; the ledger has the
 * deposit and one entry per hold, so every invariant holds. Then VACUUM ANALYZE, as production's
 * autovacuum would have done (this server runs with it off).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function populate(db: Kysely<any>, holds: number, accounts: number): Promise<void> {
  await sql`
    insert into credits.accounts (id, balance)
    select 'acct-' || a, 0 from generate_series(0, ${accounts - 1}::int) a`.execute(db);
  await sql`
    insert into credits.holds (account_id, amount, expires_at, idempotency_key, created_at)
    select 'acct-' || (i % ${accounts}::int), 1 + i % 7,
           case when (i / ${accounts}::int) % 2 = 0
                then now() - interval '1 hour' + (i::float8 / ${holds}::int) * interval '59 minutes'
                else now() + interval '1 hour' + (i::float8 / ${holds}::int) * interval '3 days' end,
           'h-' || i, now() - interval '2 hours'
      from generate_series(1, ${holds}::int) i`.execute(db);
  await sql`
    update credits.accounts a set balance = t.held + 1000, held = t.held
      from (select account_id, sum(amount) as held from credits.holds group by account_id) t
     where a.id = t.account_id`.execute(db);
  await sql`
    insert into credits.ledger_entries (account_id, kind, amount, idempotency_key)
    select id, 'deposit', balance, 'opening' from credits.accounts order by id`.execute(db);
  await sql`
    insert into credits.ledger_entries (account_id, kind, amount, held_change, hold_id)
    select account_id, 'hold', 0, amount, id from credits.holds order by id`.execute(db);
  await vacuumAnalyze(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function vacuumAnalyze(db: Kysely<any>): Promise<void> {
  for (const table of [
    "credits.holds",
    "credits.accounts",
    "credits.ledger_entries",
    "graphile_worker._private_jobs",
  ]) {
    await sql`vacuum analyze ${sql.raw(table)}`.execute(db);
  }
  // Start each measurement from a clean checkpoint (needs superuser or pg_checkpoint; optional).
  await sql`checkpoint`.execute(db).catch(() => undefined);
}
