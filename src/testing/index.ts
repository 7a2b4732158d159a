/**
 * pgjobs/testing: what an app's own tests need, against a real PostgreSQL.
 *
 * @example
 * const kit = createTestKit(jobs); // typed by the app's tasks: kit.assertEnqueued(trx, "app__hello", { name: "ada" })
 * const server = await startTestServer({ testDatabaseUrl: process.env.TEST_DATABASE_URL }, logger);
 * const template = await createTemplateDatabase(server.adminUrl, logger, { tasks, appMigrationsDir: "migrations" });
 * const url = databaseUrl(server.adminUrl, await cloneDatabase(server.adminUrl, template));
 */
export {
  createTestKit,
  DrainLimitError,
  type DrainOptions,
  type EnqueuedJobView,
  type PayloadMatch,
  type TestKit,
} from "./kit.ts";
export { installTestClock, type TestClock } from "./test-clock.ts";
export {
  cloneDatabase,
  createEmptyDatabase,
  createTemplateDatabase,
  databaseUrl,
  dropDatabase,
} from "./test-database.ts";
export { ensureSupabaseRoles, SUPABASE_DATABASE_SQL, SUPABASE_ROLES_SQL } from "./supabase.ts";
export { startTestServer, type TestServer, type TestServerKind } from "./test-server.ts";
