/**
 * Migrations: pgjobs' own (shipped in the package) then the app's, concurrent migrators taking
 * turns, edited migrations refused, the ledger of pgjobs 0.1 upgraded in place, a held lock
 * reported by pid, and `pgjobs migrate --sql` giving the very schema `pgjobs migrate` gives.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { sql } from "kysely";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { createDb, createPool } from "../src/db/connection.ts";
import { exportSchemaSql } from "../src/db/export-sql.ts";
import { migrate, readMigrationFiles } from "../src/db/migrate.ts";
import { prepareDatabase } from "../src/setup.ts";
import { createEmptyDatabase, databaseUrl, dropDatabase } from "../src/testing/test-database.ts";
import { APP_MIGRATIONS_DIR, appTasks } from "./support/app.ts";
import { testServer } from "./support/database.ts";
import { quietLogger } from "./support/worker.ts";

const created: string[] = [];
afterAll(async () => {
  for (const name of created) await dropDatabase(testServer().adminUrl, name);
});

async function emptyDatabase() {
  const name = await createEmptyDatabase(testServer().adminUrl, "pgjobs_migrate");
  created.push(name);
  return databaseUrl(testServer().adminUrl, name);
}

async function withPool<T>(url: string, use: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = createPool(url, { max: 3 });
  try {
    return await use(pool);
  } finally {
    await pool.end();
  }
}

/** What a schema is made of, comparable across two databases. */
async function catalog(url: string): Promise<string[]> {
  return withPool(url, async (pool) => {
    const { rows } = await pool.query<{ line: string }>(`
      select 'column ' || table_schema || '.' || table_name || '.' || column_name || ' ' || data_type || ' '
             || is_nullable || ' ' || coalesce(column_default, '') as line
        from information_schema.columns where table_schema in ('graphile_worker', 'pgjobs', 'credits')
      union all
      select 'index ' || schemaname || '.' || indexname || ' ' || indexdef from pg_indexes
       where schemaname in ('graphile_worker', 'pgjobs', 'credits')
      union all
      select 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') '
             || md5(pg_get_functiondef(p.oid))
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname in ('graphile_worker', 'pgjobs', 'credits') and p.prokind <> 'a'
      union all
      select 'trigger ' || tgrelid::regclass::text || ' ' || pg_get_triggerdef(oid) from pg_trigger where not tgisinternal
      union all
      select 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
        from pg_constraint where connamespace::regnamespace::text in ('graphile_worker', 'pgjobs', 'credits')
      union all
      select 'view ' || schemaname || '.' || viewname || ' ' || md5(definition) from pg_views
       where schemaname in ('graphile_worker', 'pgjobs', 'credits')
      union all
      select 'ledger ' || source || ' ' || name || ' ' || checksum from pgjobs.schema_migrations
      union all
      select 'graphile migration ' || id || ' ' || breaking from graphile_worker.migrations
      order by 1`);
    return rows.map((row) => row.line);
  });
}

describe("migrate", () => {
  it("two concurrent migrators leave one correct schema: pgjobs' migrations, then the app's", async () => {
    const url = await emptyDatabase();
    const pools = [createPool(url, { max: 3 }), createPool(url, { max: 3 })];
    try {
      const app = { tasks: appTasks, appMigrationsDir: APP_MIGRATIONS_DIR };
      const results = await Promise.all(pools.map((pool) => prepareDatabase(pool, createDb(pool), quietLogger, app)));
      const files = await readMigrationFiles(APP_MIGRATIONS_DIR);
      expect(files.filter((file) => file.source === "app").map((file) => file.name)).toContain("0003_credits.sql");
      // Exactly one of them applied each file; the other found it applied.
      expect(results.flatMap((result) => result.applied).sort()).toEqual(files.map((file) => file.name).sort());
      const db = createDb(pools[0]!);
      const ledger = await db
        .selectFrom("pgjobs.schema_migrations")
        .select(["source", "name", "checksum"])
        .orderBy("applied_at")
        .execute();
      expect(ledger).toEqual(files.map(({ source, name, checksum }) => ({ source, name, checksum })));
      // graphile-worker's schema is there and usable, and the app's tasks are registered.
      const { rows } = await sql<{
        id: string;
      }>`select id from graphile_worker.add_job('pgjobs__ping', '{"message":"x"}')`.execute(db);
      expect(rows).toHaveLength(1);
      // A third run is a no-op.
      expect(await migrate(pools[1]!, quietLogger, app)).toEqual({ applied: [], alreadyApplied: files.length });
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });

  it("on an empty database without an app, creates pgjobs' schema and nothing of the credits app", async () => {
    const url = await emptyDatabase();
    await withPool(url, async (pool) => {
      await migrate(pool, quietLogger);
      const { rows } = await pool.query<{ nspname: string }>(
        "select nspname from pg_namespace where nspname not like 'pg\\_%' and nspname <> 'information_schema' order by 1",
      );
      expect(rows.map((row) => row.nspname)).toEqual(["graphile_worker", "pgjobs", "public"]);
      const { rows: tables } = await pool.query<{ relname: string }>(
        "select relname from pg_class where relnamespace = 'pgjobs'::regnamespace and relkind = 'r' order by 1",
      );
      expect(tables.map((row) => row.relname)).not.toContain("pings");
    });
  });

  it("refuses to run when an applied migration was edited", async () => {
    const url = await emptyDatabase();
    await withPool(url, async (pool) => {
      await migrate(pool, quietLogger);
      await pool.query("update pgjobs.schema_migrations set checksum = 'edited' where name = '0001_pgjobs_base.sql'");
      await expect(migrate(pool, quietLogger)).rejects.toThrow(
        /Migration 0001_pgjobs_base.sql \(pgjobs\) was changed after it was applied .* put the change in a new migration/,
      );
    });
  });

  it("upgrades the ledger of pgjobs 0.1, where the app's migrations were recorded as pgjobs'", async () => {
    const url = await emptyDatabase();
    await withPool(url, async (pool) => {
      const app = { appMigrationsDir: APP_MIGRATIONS_DIR };
      await migrate(pool, quietLogger, app);
      // What 0.1 left: one list of names, no source.
      await pool.query(`
        alter table pgjobs.schema_migrations drop constraint schema_migrations_pkey;
        alter table pgjobs.schema_migrations drop column source;
        alter table pgjobs.schema_migrations add primary key (name);`);
      expect(await migrate(pool, quietLogger, app)).toMatchObject({ applied: [] });
      const { rows } = await pool.query<{ source: string }>(
        "select source from pgjobs.schema_migrations where name = '0003_credits.sql'",
      );
      expect(rows).toEqual([{ source: "app" }]);
    });
  });

  it("waits for a lock held elsewhere only so long, then names the session holding it", async () => {
    const url = await emptyDatabase();
    const holder = new pg.Client(url);
    await holder.connect();
    try {
      const { rows } = await holder.query<{ pid: number }>("select pg_backend_pid() as pid");
      await holder.query("select pg_advisory_lock($1)", [0x70676a6f6273]);
      await withPool(url, async (pool) => {
        await expect(migrate(pool, quietLogger, { lockTimeoutMs: 500 })).rejects.toThrow(
          new RegExp(`held pgjobs' migration lock .*backend pid ${rows[0]!.pid}`),
        );
      });
    } finally {
      await holder.end();
    }
  });

  it("`pgjobs migrate --sql` applied with psql gives the schema `pgjobs migrate` gives, and applies twice", async () => {
    const migrated = await emptyDatabase();
    await withPool(migrated, (pool) => migrate(pool, quietLogger, { appMigrationsDir: APP_MIGRATIONS_DIR }));
    const scripted = await emptyDatabase();
    const dir = await mkdtemp(path.join(os.tmpdir(), "pgjobs-sql-"));
    try {
      const file = path.join(dir, "schema.sql");
      await writeFile(file, await exportSchemaSql(APP_MIGRATIONS_DIR));
      for (let time = 0; time < 2; time++) {
        execFileSync("psql", [scripted, "-q", "-v", "ON_ERROR_STOP=1", "-f", file], { stdio: "pipe" });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const [expected, actual] = await Promise.all([catalog(migrated), catalog(scripted)]);
    expect(actual.length).toBeGreaterThan(100);
    expect(actual).toEqual(expected);
    // A migrator finds nothing left to do.
    await withPool(scripted, async (pool) => {
      expect(await migrate(pool, quietLogger, { appMigrationsDir: APP_MIGRATIONS_DIR })).toMatchObject({ applied: [] });
    });
  });
});
