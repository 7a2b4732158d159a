/**
 * Once per test run: find a PostgreSQL server (TEST_DATABASE_URL → Testcontainers → embedded),
 * migrate a template database, and hand both to the test files.
 */
import type { TestProject } from "vitest/node";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import pg from "pg";
import { createTemplateDatabase, databaseUrl, dropDatabase } from "../../src/testing/test-database.ts";
import { APP_MIGRATIONS_DIR, appTasks, TEST_TABLES_SQL } from "./app.ts";
import { startTestServer, type TestServerKind } from "../../src/testing/test-server.ts";
import { ensureSupabaseRoles, SUPABASE_DATABASE_SQL } from "../../src/testing/supabase.ts";

declare module "vitest" {
  export interface ProvidedContext {
    pgjobsServer: { adminUrl: string; template: string; supabaseTemplate: string; kind: TestServerKind };
  }
}

export default async function setup(project: TestProject) {
  const config = loadConfig();
  const logger = createLogger({ logLevel: "warn", logFormat: "json" });
  const server = await startTestServer(config, logger);
  // Supabase's roles first: the server's, shared by every database on it (and other runs).
  await ensureSupabaseRoles(server.adminUrl);
  const app = { tasks: appTasks, appMigrationsDir: APP_MIGRATIONS_DIR };
  // Two templates: a plain PostgreSQL database, and one set up as Supabase sets up a project
  // before its migrations (test/security/ runs against that one).
  const [template, supabaseTemplate] = await Promise.all([
    createTemplateDatabase(server.adminUrl, logger, app),
    createTemplateDatabase(server.adminUrl, logger, { ...app, setupSql: SUPABASE_DATABASE_SQL }),
  ]);
  for (const name of [template, supabaseTemplate]) {
    const client = new pg.Client(databaseUrl(server.adminUrl, name));
    await client.connect();
    await client.query(TEST_TABLES_SQL);
    await client.end();
  }
  console.log(
    `pgjobs tests: PostgreSQL from ${server.kind}; template databases ${template}, ${supabaseTemplate} (Supabase)`,
  );
  project.provide("pgjobsServer", { adminUrl: server.adminUrl, template, supabaseTemplate, kind: server.kind });
  return async () => {
    await dropDatabase(server.adminUrl, template);
    await dropDatabase(server.adminUrl, supabaseTemplate);
    await server.stop();
  };
}
