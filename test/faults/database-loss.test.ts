/**
 * The database goes away under a running worker: restarted (a PostgreSQL server this test owns),
 * or its connections terminated by an administrator. The worker exits non-zero so a supervisor
 * restarts it; once the database is back every job ends done exactly once (a transactional
 * effect, once) or is retried, and nothing stays locked past the liveness bound.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { sql } from "kysely";
import { afterAll, describe, expect, it } from "vitest";
import { EXIT } from "../../src/cli/exit-codes.ts";
import { createDb, createPool, type Db } from "../../src/db/connection.ts";
import { type EmbeddedServer, startEmbeddedPostgres } from "../../src/db/embedded.ts";
import { syncTaskRegistry } from "../../src/enqueue/sql-allowlist.ts";
import { prepareDatabase } from "../../src/setup.ts";
import { faultTasks } from "../fixtures/fault-tasks.ts";
import { TEST_TABLES_SQL } from "../support/app.ts";
import { useTestDatabase } from "../support/database.ts";
import { waitFor } from "../support/wait.ts";
import { quietLogger } from "../support/worker.ts";
import { useWorkerProcesses } from "./worker-process.ts";

const database = useTestDatabase();
const startWorker = useWorkerProcesses();
const env = { PGJOBS_LIVENESS_TIMEOUT_MS: "3000", PGJOBS_CONCURRENCY: "4" };
const JOBS = 40;

let server: EmbeddedServer | undefined;
let dataDir: string | undefined;
afterAll(async () => {
  await server?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function enqueueEffects(db: Db): Promise<void> {
  await sql`
    select graphile_worker.add_job('fault__effect', json_build_object('marker', 'effect ' || n, 'ms', 300))
      from generate_series(1, ${JOBS}::int) n`.execute(db);
}

/** Every job done, each effect exactly once, nothing left in the queue or locked. */
async function expectAllDoneOnce(db: Db): Promise<void> {
  await waitFor(
    "every job to be done",
    async () => {
      const { rows } = await sql<{ n: string }>`select count(*) as n from graphile_worker._private_jobs`.execute(db);
      return rows[0]!.n === "0" ? true : undefined;
    },
    { timeoutMs: 60_000 },
  );
  const { rows } = await sql<{ message: string; n: string }>`
    select message, count(*) as n from public.effects group by message order by message`.execute(db);
  expect(rows).toHaveLength(JOBS);
  for (const row of rows) expect(row, row.message).toMatchObject({ n: "1" });
  const { rows: succeeded } = await sql<{ n: string }>`
    select count(distinct job_id) as n from pgjobs.job_runs where state = 'succeeded'`.execute(db);
  expect(succeeded[0]!.n).toBe(String(JOBS));
}

async function waitSomeDoneSomeRunning(db: Db): Promise<void> {
  await waitFor("some jobs done and some running", async () => {
    const { rows } = await sql<{ done: string; running: string }>`
      select (select count(*) from pgjobs.job_runs where state = 'succeeded') as done,
             (select count(*) from pgjobs.running_attempts) as running`.execute(db);
    return Number(rows[0]!.done) >= 4 && Number(rows[0]!.running) > 0 ? true : undefined;
  });
}

describe("losing the database under a running worker", () => {
  it("a PostgreSQL restart: the worker exits non-zero; after it, every job is done exactly once", async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "pgjobs-restart-"));
    await chmod(dataDir, 0o755);
    server = await startEmbeddedPostgres(dataDir, quietLogger, { fsync: false });
    const { port, url } = server;
    const pool = createPool(url, { max: 4 });
    const db = createDb(pool);
    try {
      await prepareDatabase(pool, db, quietLogger, { tasks: faultTasks });
      await sql.raw(TEST_TABLES_SQL).execute(db);
      await enqueueEffects(db);
      const first = await startWorker(url, env);
      await waitSomeDoneSomeRunning(db);

      await server.stop();
      server = await startEmbeddedPostgres(dataDir, quietLogger, { fsync: false, port });
      const exit = await first.exited;
      expect(exit.code).toBe(EXIT.FAILURE);
      expect(first.output()).toContain("lost the connection to PostgreSQL");

      // The supervisor starts it again; the jobs the first one held come back within the bound.
      await startWorker(url, env);
      await expectAllDoneOnce(db);
    } finally {
      await pool.end();
    }
  }, 120_000);

  it("its connections terminated by an administrator: the same", async () => {
    const { db, url } = database();
    await syncTaskRegistry(db, faultTasks);
    await enqueueEffects(db);
    const first = await startWorker(url, env);
    await waitSomeDoneSomeRunning(db);

    await sql`select pg_terminate_backend(pid) from pg_stat_activity
               where datname = current_database() and application_name = 'pgjobs worker'`.execute(db);
    const exit = await first.exited;
    expect(exit.code).toBe(EXIT.FAILURE);

    await startWorker(url, env);
    await expectAllDoneOnce(db);
  }, 120_000);
});
