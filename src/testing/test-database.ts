/**
 * One migrated template database per test run, and one clone of it per test file, so files run
 * in parallel without seeing each other's jobs.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { createDb, createPool } from "../db/connection.ts";
import type { Logger } from "../logger.ts";
import { prepareDatabase } from "../setup.ts";
import type { TaskList } from "../tasks/task-registry.ts";

export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function withAdminClient<T>(adminUrl: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: "pgjobs test admin" });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
}

/** Creates an empty database (no migrations) and returns its name. */
export async function createEmptyDatabase(adminUrl: string, prefix = "pgjobs_test"): Promise<string> {
  const name = uniqueName(prefix);
  await withAdminClient(adminUrl, (client) => client.query(`create database ${pg.escapeIdentifier(name)}`));
  return name;
}

/**
 * A database migrated for the app (pgjobs' schema, the app's migrations, its tasks registered), to
 * clone per test file. `setupSql` runs first, as a platform's own setup does before an app's
 * migrations (SUPABASE_DATABASE_SQL, say).
 */
export async function createTemplateDatabase(
  adminUrl: string,
  logger: Logger,
  app: { tasks: TaskList; appMigrationsDir?: string; setupSql?: string } = { tasks: [] },
): Promise<string> {
  const name = await createEmptyDatabase(adminUrl, "pgjobs_template");
  const pool = createPool(databaseUrl(adminUrl, name), { max: 2, applicationName: "pgjobs test template" });
  try {
    if (app.setupSql) await pool.query(app.setupSql);
    await prepareDatabase(pool, createDb(pool), logger, app);
  } finally {
    await pool.end();
  }
  return name;
}

export async function cloneDatabase(adminUrl: string, template: string, prefix = "pgjobs_test"): Promise<string> {
  const name = uniqueName(prefix);
  await withAdminClient(adminUrl, (client) =>
    client.query(`create database ${pg.escapeIdentifier(name)} template ${pg.escapeIdentifier(template)}`),
  );
  return name;
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withAdminClient(adminUrl, (client) =>
    client.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`),
  );
}
