/**
 * Acceptance 5: any session can take the migration advisory lock (advisory locks have no
 * privileges). `pgjobs migrate` and a worker's start wait for it only within their bound
 * (PGJOBS_MIGRATION_LOCK_TIMEOUT_MS), then stop saying which backend holds it, having migrated
 * nothing. (test/migrate.test.ts checks migrate() itself the same way.)
 */
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanEnv, runCli } from "../support/cli.ts";
import { useTestDatabase } from "../support/database.ts";

const database = useTestDatabase({ supabase: true });
const REPOSITORY = fileURLToPath(new URL("../..", import.meta.url));
/** "pgjobs" in ASCII: the key every pgjobs migrator takes (src/db/migrate.ts). */
const MIGRATION_LOCK_KEY = 0x70676a6f6273;

let holder: pg.Client;
let holderPid: number;

beforeAll(async () => {
  // Anyone who can connect can hold it: here a session of Supabase's API login role.
  holder = new pg.Client({ connectionString: database().url, application_name: "lock squatter" });
  await holder.connect();
  await holder.query("set session authorization authenticator");
  const { rows } = await holder.query<{ pid: number }>("select pg_backend_pid() as pid");
  holderPid = rows[0]!.pid;
  await holder.query("select pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
});

afterAll(async () => {
  await holder.end();
});

describe("acceptance 5: a held migration lock stops migrating within its bound, naming the holder", () => {
  it.each([
    ["pgjobs migrate", ["migrate"]],
    ["a worker's start", ["worker"]],
  ])("%s gives up after the bound, exits 1, and names the holder's pid", async (_what, args) => {
    const result = await runCli(
      args,
      cleanEnv({ DATABASE_URL: database().url, PGJOBS_MIGRATION_LOCK_TIMEOUT_MS: "1000", LOG_FORMAT: "json" }),
      REPOSITORY,
    );
    expect(result.code).toBe(1);
    const output = result.stdout + result.stderr;
    expect(output).toContain(`Another session has held pgjobs' migration lock for over 1 s (backend pid ${holderPid}`);
    expect(output).toContain('application "lock squatter"');
    expect(output).toContain("nothing was migrated");
  });
});
