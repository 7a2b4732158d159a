/**
 * `useTestDatabase()` in a test file: a fresh clone of the migrated template for this file,
 * with a pool and kysely over it, dropped when the file is done.
 */
import { afterAll, beforeAll, inject } from "vitest";
import type pg from "pg";
import { Kysely, PostgresDialect } from "kysely";
import { createPool } from "../../src/db/connection.ts";
import type { TestDb, TestTables } from "./app.ts";
import { cloneDatabase, databaseUrl, dropDatabase } from "../../src/testing/test-database.ts";

export interface TestDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  db: TestDb;
}

export function testServer() {
  return inject("pgjobsServer");
}

/**
 * `{ supabase: true }`: a clone of the template set up as Supabase sets up a project (its roles,
 * auth.uid(), default privileges on public) before the migrations ran.
 */
export function useTestDatabase(options: { supabase?: boolean } = {}): () => TestDatabase {
  let current: TestDatabase | undefined;
  beforeAll(async () => {
    const server = testServer();
    const name = await cloneDatabase(server.adminUrl, options.supabase ? server.supabaseTemplate : server.template);
    const url = databaseUrl(server.adminUrl, name);
    const pool = createPool(url, { max: 20, applicationName: "pgjobs test" });
    current = { name, url, pool, db: new Kysely<TestTables>({ dialect: new PostgresDialect({ pool }) }) };
  });
  afterAll(async () => {
    if (!current) return;
    await current.pool.end();
    await dropDatabase(testServer().adminUrl, current.name);
  });
  return () => {
    if (!current) throw new Error("useTestDatabase(): the database is ready only inside tests and hooks");
    return current;
  };
}
