import { sql } from "kysely";
import { afterAll, describe, expect, it } from "vitest";
import { createDb, createPool } from "../src/db/connection.ts";
import { migrate, readMigrationFiles } from "../src/db/migrate.ts";
import { prepareDatabase } from "../src/setup.ts";
import { createEmptyDatabase, databaseUrl, dropDatabase } from "../src/testing/test-database.ts";
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

describe("migrate", () => {
  it("two concurrent migrators leave one correct schema", async () => {
    const url = await emptyDatabase();
    const pools = [createPool(url, { max: 3 }), createPool(url, { max: 3 })];
    try {
      const results = await Promise.all(pools.map((pool) => prepareDatabase(pool, createDb(pool), quietLogger)));
      const files = await readMigrationFiles();
      // Exactly one of them applied each file; the other found it applied.
      expect(results.flatMap((result) => result.applied).sort()).toEqual(files.map((file) => file.name));
      const db = createDb(pools[0]!);
      const ledger = await db.selectFrom("pgjobs.schema_migrations").select(["name", "checksum"]).execute();
      expect(ledger.map((row) => row.name)).toEqual(files.map((file) => file.name));
      expect(ledger.map((row) => row.checksum)).toEqual(files.map((file) => file.checksum));
      // graphile-worker's schema is there and usable, and the task registry is written.
      const { rows } = await sql<{
        id: string;
      }>`select id from graphile_worker.add_job('pgjobs__ping', '{"message":"x"}')`.execute(db);
      expect(rows).toHaveLength(1);
      // A third run is a no-op.
      expect(await migrate(pools[1]!, quietLogger)).toEqual({ applied: [], alreadyApplied: files.length });
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });

  it("refuses to run when an applied migration was edited", async () => {
    const url = await emptyDatabase();
    const pool = createPool(url, { max: 2 });
    try {
      await migrate(pool, quietLogger);
      await pool.query("update pgjobs.schema_migrations set checksum = 'edited' where name = '0001_pgjobs_base.sql'");
      await expect(migrate(pool, quietLogger)).rejects.toThrow(
        /Migration 0001_pgjobs_base.sql was changed after it was applied .* put the change in a new migration/,
      );
    } finally {
      await pool.end();
    }
  });
});
