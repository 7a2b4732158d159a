/**
 * Applies graphile-worker's schema, then migrations/*.sql in name order, each file in its own
 * transaction and recorded with its checksum in pgjobs.schema_migrations.
 *
 * graphile-worker goes first because our migrations build on its tables (history triggers,
 * pgjobs.enqueue over add_job). A session advisory lock makes concurrent migrators (two
 * containers starting at once) take turns: the second finds everything applied and does nothing.
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

export const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations/", import.meta.url));

/** Arbitrary constant shared by every pgjobs migrator: "pgjobs" in ASCII. */
const MIGRATION_LOCK_KEY = 0x70676a6f6273;

export interface MigrationFile {
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

export async function readMigrationFiles(dir = MIGRATIONS_DIR): Promise<MigrationFile[]> {
  const names = (await readdir(dir)).filter((name) => name.endsWith(".sql")).sort();
  for (const name of names) {
    if (!/^\d{4}_[a-z0-9_]+\.sql$/.test(name)) {
      throw new MigrationError(
        `Migration file ${name} is not named NNNN_description.sql; rename it so the apply order is unambiguous.`,
      );
    }
  }
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(path.join(dir, name), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    }),
  );
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: number;
}

export async function migrate(pool: pg.Pool, logger: Logger, dir = MIGRATIONS_DIR): Promise<MigrateResult> {
  const files = await readMigrationFiles(dir);
  const client = await pool.connect();
  try {
    await client.query("select pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    try {
      await runGraphileMigrations({ pgPool: pool, logger: toGraphileLogger(logger) });
      await client.query(`
        create schema if not exists pgjobs;
        create table if not exists pgjobs.schema_migrations (
          name text primary key,
          checksum text not null,
          applied_at timestamptz not null default now()
        );`);
      const { rows } = await client.query<{ name: string; checksum: string }>(
        "select name, checksum from pgjobs.schema_migrations",
      );
      const recorded = new Map(rows.map((row) => [row.name, row.checksum]));
      const applied: string[] = [];
      for (const file of files) {
        const checksum = recorded.get(file.name);
        if (checksum !== undefined) {
          if (checksum !== file.checksum) {
            throw new MigrationError(
              `Migration ${file.name} was changed after it was applied to this database. ` +
                "Migrations are forward-only: restore the file and put the change in a new migration.",
            );
          }
          continue;
        }
        await applyOne(client, file);
        logger.info({ migration: file.name }, "applied migration");
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

async function applyOne(client: pg.PoolClient, file: MigrationFile): Promise<void> {
  await client.query("begin");
  try {
    await client.query(file.sql);
    await client.query("insert into pgjobs.schema_migrations (name, checksum) values ($1, $2)", [
      file.name,
      file.checksum,
    ]);
    await client.query("commit");
  } catch (error) {
    await client.query("rollback");
    throw new MigrationError(
      `Migration ${file.name} failed and was rolled back: ${(error as Error).message}. ` +
        "Fix the SQL and run `pgjobs migrate` again; earlier migrations stay applied.",
      { cause: error },
    );
  }
}

/** Names of migration files not yet applied to this database (all of them if pgjobs never ran there). */
export async function pendingMigrations(db: Kysely<Database>, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = await readMigrationFiles(dir);
  const applied = await db
    .selectFrom("pgjobs.schema_migrations")
    .select("name")
    .execute()
    .catch(() => []);
  const names = new Set(applied.map((row) => row.name));
  return files.filter((file) => !names.has(file.name)).map((file) => file.name);
}
