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

declare module "vitest" {
  export interface ProvidedContext {
    pgjobsServer: { adminUrl: string; template: string; kind: TestServerKind };
  }
}

export default async function setup(project: TestProject) {
  const config = loadConfig();
  const logger = createLogger({ logLevel: "warn", logFormat: "json" });
  const server = await startTestServer(config, logger);
  const template = await createTemplateDatabase(server.adminUrl, logger, {
    tasks: appTasks,
    appMigrationsDir: APP_MIGRATIONS_DIR,
  });
  const client = new pg.Client(databaseUrl(server.adminUrl, template));
  await client.connect();
  await client.query(TEST_TABLES_SQL);
  await client.end();
  console.log(`pgjobs tests: PostgreSQL from ${server.kind}; template database ${template}`);
  project.provide("pgjobsServer", { adminUrl: server.adminUrl, template, kind: server.kind });
  return async () => {
    await dropDatabase(server.adminUrl, template);
    await server.stop();
  };
}
