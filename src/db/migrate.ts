/**
 * Applies graphile-worker's schema, then pgjobs' own migrations (shipped in this package, in
 * ./migrations), then the app's (its migrations folder), each file in its own transaction and
 * recorded with its checksum in pgjobs.schema_migrations under its source ("pgjobs" or "app").
 *
 * graphile-worker goes first because pgjobs builds on its tables (history triggers,
 * pgjobs.enqueue over add_job), and pgjobs before the app, which builds on both. A session
 * advisory lock makes concurrent migrators (two containers starting at once) take turns; one
 * that cannot get it within the bound says which backend holds it.
 */
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runMigrations as runGraphileMigrations } from "graphile-worker";
import type { Kysely } from "kysely";
import type pg from "pg";
import type { Logger } from "../logger.ts";
import { toGraphileLogger } from "../logger.ts";
import type { Database } from "./schema.ts";

/** pgjobs' own migrations, inside the package. */
export const PGJOBS_MIGRATIONS_DIR = fileURLToPath(new URL("./migrations/", import.meta.url));

/** Arbitrary constant shared by every pgjobs migrator: "pgjobs" in ASCII. */
const MIGRATION_LOCK_KEY = 0x70676a6f6273;

export type MigrationSource = "pgjobs" | "app";

export interface MigrationFile {
  source: MigrationSource;
  name: string;
  sql: string;
  checksum: string;
}

export class MigrationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MigrationError";
  }
}

export interface MigrateOptions {
  /** The app's migrations folder, applied after pgjobs' own. */
  appMigrationsDir?: string;
  /** How long to wait for another migrator's lock before giving up, naming it. @defaultValue `60000` */
  lockTimeoutMs?: number;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: number;
}

async function readDir(source: MigrationSource, dir: string): Promise<MigrationFile[]> {
  const names = (await readdir(dir)).filter((name) => name.endsWith(".sql")).sort();
  for (const name of names) {
    if (!/^\d{4}_[a-z0-9_]+\.sql$/.test(name)) {
      throw new MigrationError(
        `Migration file ${path.join(dir, name)} is not named NNNN_description.sql; rename it so the apply order is unambiguous.`,
      );
    }
  }
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(path.join(dir, name), "utf8");
      return { source, name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    }),
  );
}

/** Every migration file to apply, in order: pgjobs' own, then the app's. */
export async function readMigrationFiles(appMigrationsDir?: string): Promise<MigrationFile[]> {
  const own = await readDir("pgjobs", PGJOBS_MIGRATIONS_DIR);
  const app = appMigrationsDir ? await readDir("app", appMigrationsDir) : [];
  return [...own, ...app];
}

export async function migrate(pool: pg.Pool, logger: Logger, options: MigrateOptions = {}): Promise<MigrateResult> {
  const files = await readMigrationFiles(options.appMigrationsDir);
  const client = await pool.connect();
  try {
    await acquireLock(client, options.lockTimeoutMs ?? 60_000);
    try {
      await runGraphileMigrations({ pgPool: pool, logger: toGraphileLogger(logger) });
      await client.query(LEDGER_SQL);
      const { rows } = await client.query<{ source: MigrationSource; name: string; checksum: string }>(
        "select source, name, checksum from pgjobs.schema_migrations",
      );
      const recorded = new Map(rows.map((row) => [`${row.source}/${row.name}`, row.checksum]));
      const applied: string[] = [];
      for (const file of files) {
        let checksum = recorded.get(`${file.source}/${file.name}`);
        if (checksum === undefined && file.source === "app" && recorded.get(`pgjobs/${file.name}`) === file.checksum) {
          // Applied before pgjobs and its app had separate migrations: it was the app's all along.
          await client.query(
            "update pgjobs.schema_migrations set source = 'app' where source = 'pgjobs' and name = $1",
            [file.name],
          );
          checksum = file.checksum;
        }
        if (checksum !== undefined) {
          if (checksum !== file.checksum) {
            throw new MigrationError(
              `Migration ${file.name} (${file.source}) was changed after it was applied to this database. ` +
                "Migrations are forward-only: restore the file and put the change in a new migration.",
            );
          }
          continue;
        }
        await applyOne(client, file);
        logger.info({ migration: file.name, source: file.source }, "applied migration");
        applied.push(file.name);
      }
      return { applied, alreadyApplied: files.length - applied.length };
    } finally {
      await client.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]);
    }
  } finally {
    client.release();
  }
}

/** The ledger, and its upgrade from the single-source ledger of pgjobs 0.1. */
export const LEDGER_SQL = `
  create schema if not exists pgjobs;
  create table if not exists pgjobs.schema_migrations (
    source text not null default 'pgjobs',
    name text not null,
    checksum text not null,
    applied_at timestamptz not null default now(),
    primary key (source, name)
  );
  do $$
  begin
    if not exists (select 1 from information_schema.columns
                    where table_schema = 'pgjobs' and table_name = 'schema_migrations' and column_name = 'source') then
      alter table pgjobs.schema_migrations add column source text not null default 'pgjobs';
      alter table pgjobs.schema_migrations drop constraint schema_migrations_pkey;
      alter table pgjobs.schema_migrations add primary key (source, name);
    end if;
  end;
  $$;`;

async function acquireLock(client: pg.PoolClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query<{ locked: boolean }>("select pg_try_advisory_lock($1) as locked", [
      MIGRATION_LOCK_KEY,
    ]);
    if (rows[0]?.locked) return;
    if (Date.now() >= deadline) {
      const { rows: holders } = await client.query<{ pid: number; application_name: string; state: string }>(
        `select a.pid, a.application_name, a.state
           from pg_locks l join pg_stat_activity a on a.pid = l.pid
          where l.locktype = 'advisory' and l.granted
            and ((l.classid::bigint << 32) | l.objid::bigint) = $1`,
        [MIGRATION_LOCK_KEY],
      );
      const holder = holders[0];
      throw new MigrationError(
        `Another session has held pgjobs' migration lock for over ${Math.round(timeoutMs / 1000)} s` +
          (holder
            ? ` (backend pid ${holder.pid}, application "${holder.application_name || "?"}", ${holder.state})`
            : "") +
          "; nothing was migrated. If that session is a stuck migrator, end it with pg_terminate_backend(pid) and run `pgjobs migrate` again.",
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function applyOne(client: pg.PoolClient, file: MigrationFile): Promise<void> {
  await client.query("begin");
  try {
    await client.query(file.sql);
    await client.query("insert into pgjobs.schema_migrations (source, name, checksum) values ($1, $2, $3)", [
      file.source,
      file.name,
      file.checksum,
    ]);
    await client.query("commit");
  } catch (error) {
    await client.query("rollback");
    throw new MigrationError(
      `Migration ${file.name} (${file.source}) failed and was rolled back: ${(error as Error).message}. ` +
        "Fix the SQL and run `pgjobs migrate` again; earlier migrations stay applied.",
      { cause: error },
    );
  }
}

/** Migrations not yet applied to this database (all of them if pgjobs never ran there). */
export async function pendingMigrations(db: Kysely<Database>, appMigrationsDir?: string): Promise<string[]> {
  const files = await readMigrationFiles(appMigrationsDir);
  const applied = await db
    .selectFrom("pgjobs.schema_migrations")
    .select(["source", "name"])
    .execute()
    .catch(() => []);
  const names = new Set(applied.map((row) => `${row.source}/${row.name}`));
  const legacy = new Set(applied.filter((row) => row.source === "pgjobs").map((row) => row.name));
  return files
    .filter((file) => !names.has(`${file.source}/${file.name}`) && !(file.source === "app" && legacy.has(file.name)))
    .map((file) => file.name);
}
