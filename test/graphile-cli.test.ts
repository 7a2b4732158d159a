/**
 * Acceptance 7 of issue #8: the plain `graphile-worker` CLI, configured as the README documents
 * (this repository's graphile.config.ts, found in the working directory; the database migrated by
 * `pgjobs migrate`), runs the credits app's tasks end to end: a bad payload is recorded rejected
 * and not retried, a good one succeeds with its result in pgjobs.job_runs, the process is
 * registered in pgjobs.workers and heartbeats while a task runs, and a SIGTERM mid-run drains:
 * the row says stopping, the task finishes and its completion is flushed, then the row says
 * stopped and nothing is left locked. A database pgjobs has not migrated is refused, saying what
 * to run. Real processes: graphile-worker's own bin, through Node ≥ 22.18 (which strips the
 * types of graphile.config.ts and the sources it imports).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { sql } from "kysely";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { createEmptyDatabase, databaseUrl, dropDatabase } from "../src/testing/test-database.ts";
import { testServer, useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";

const REPOSITORY = fileURLToPath(new URL("..", import.meta.url));
const GRAPHILE_WORKER_BIN = fileURLToPath(new URL("../node_modules/.bin/graphile-worker", import.meta.url));
/** In the bad payload only: the log must not carry it. */
const PAYLOAD_MARKER = "payload-marker-7f3a";

const database = useTestDatabase();

interface CliProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

/** `graphile-worker` with no arguments, from the repository's folder, as the README says. */
function startGraphileWorker(url: string, env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [GRAPHILE_WORKER_BIN], {
    cwd: REPOSITORY,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: url,
      LOG_FORMAT: "json",
      LOG_LEVEL: "info",
      // Heartbeats every 500 ms.
      PGJOBS_LIVENESS_TIMEOUT_MS: "3000",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, "exit").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  return { child, output: () => output, exited };
}

/** The worker's id, once the process has registered in pgjobs.workers. */
function registered(worker: CliProcess): Promise<string> {
  return waitFor(
    "the graphile-worker process to register in pgjobs.workers",
    async () => {
      if (worker.child.exitCode !== null) throw new Error(`graphile-worker exited early:\n${worker.output()}`);
      const { rows } = await sql<{ id: string }>`
        select id from pgjobs.workers where pid = ${worker.child.pid}::int and state = 'running'`.execute(
        database().db,
      );
      return rows[0]?.id;
    },
    { timeoutMs: 30_000 },
  );
}

/** Holds every credits.holds reader (a credits sweep) until released. */
async function lockHolds(): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: database().url });
  await client.connect();
  await client.query("begin");
  await client.query("lock table credits.holds in access exclusive mode");
  let released: Promise<void> | undefined;
  return {
    release: () =>
      (released ??= (async () => {
        await client.query("commit");
        await client.end();
      })()),
  };
}

async function waitRunning(jobId: string): Promise<string> {
  return waitFor(`job ${jobId}'s body to run`, async () => {
    const { rows } = await sql<{ worker_id: string }>`
      select worker_id from pgjobs.runs where job_id = ${jobId}::bigint and state = 'running'`.execute(database().db);
    return rows[0]?.worker_id;
  });
}

async function addJob(task: string, payload: unknown): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    select (graphile_worker.add_job(${task}, ${JSON.stringify(payload)}::json)).id`.execute(database().db);
  return rows[0]!.id;
}

async function runsOf(jobId: string) {
  const { rows } = await sql<{ state: string; attempt: number; result: unknown; error_message: string | null }>`
    select state, attempt, result, error_message from pgjobs.job_runs where job_id = ${jobId}::bigint order by attempt`.execute(
    database().db,
  );
  return rows;
}

async function workerRow(id: string) {
  const { rows } = await sql<{
    state: string;
    pid: number;
    concurrency: number;
    last_seen_at: Date;
    stop_reason: string;
  }>`
    select state, pid, concurrency, last_seen_at, stop_reason from pgjobs.workers where id = ${id}`.execute(
    database().db,
  );
  return rows[0];
}

describe("the plain graphile-worker CLI with graphile.config.ts (makePgjobsPreset)", () => {
  it("runs a credits task end to end: validated, recorded, heartbeating, drained and stopped on SIGTERM", async () => {
    const worker = startGraphileWorker(database().url);
    const workerId = await registered(worker);
    expect(await workerRow(workerId)).toMatchObject({ concurrency: 4 });

    // A payload that fails the task's schema (enqueued from SQL, where enqueue() cannot refuse it).
    const bad = await addJob("credits__expire_holds", { batchSize: PAYLOAD_MARKER });
    await waitFor("the bad payload to be recorded", async () => ((await runsOf(bad)).length > 0 ? true : undefined));
    const badRuns = await runsOf(bad);
    expect(badRuns).toMatchObject([{ state: "rejected", attempt: 1 }]);
    expect(badRuns[0]!.error_message).toContain("invalid payload and will not be retried");
    const { rows: badJob } = await sql<{ attempts: number; max_attempts: number; locked_by: string | null }>`
      select attempts, max_attempts, locked_by from graphile_worker._private_jobs where id = ${bad}::bigint`.execute(
      database().db,
    );
    // Left in the queue for a person, with no attempts left: not retried (the task allows 5).
    expect(badJob[0]).toEqual({ attempts: 1, max_attempts: 1, locked_by: null });

    // A good one, held inside its sweep by a lock this test holds on credits.holds, so the run
    // can be watched: its body is running, and the worker heartbeats meanwhile.
    const holds = await lockHolds();
    try {
      const good = await addJob("credits__expire_holds", {});
      expect(await waitRunning(good)).toBe(workerId);
      const runningSince = (await workerRow(workerId))!.last_seen_at;
      await waitFor("a heartbeat while the sweep runs", async () => {
        const row = await workerRow(workerId);
        return row && row.state === "running" && row.last_seen_at > runningSince ? true : undefined;
      });
      const { rows: stillRunning } = await sql<{ state: string }>`
        select state from pgjobs.runs where job_id = ${good}::bigint`.execute(database().db);
      expect(stillRunning).toEqual([{ state: "running" }]);

      // SIGTERM mid-run: graphile-worker owns the signal; pgjobs records the drain, lets the
      // sweep finish, and records the stop only once its completion is flushed.
      worker.child.kill("SIGTERM");
      await waitFor("the worker to record that it is stopping", async () =>
        (await workerRow(workerId))?.state === "stopping" ? true : undefined,
      );
      await holds.release();
      const exit = await worker.exited;
      // After its graceful shutdown graphile-worker kills itself with the signal it received.
      expect(exit).toEqual({ code: null, signal: "SIGTERM" });
      expect(await runsOf(good)).toEqual([
        { state: "succeeded", attempt: 1, result: { expired: 0, batches: 0, timerNextAt: null }, error_message: null },
      ]);
      const { rows: left } = await sql<{ id: string }>`
        select id from graphile_worker._private_jobs where id = ${good}::bigint`.execute(database().db);
      expect(left).toEqual([]); // its completion reached the database before the process ended
    } finally {
      await holds.release();
    }

    expect(await workerRow(workerId)).toMatchObject({ state: "stopped", stop_reason: "SIGTERM" });
    const { rows: locked } = await sql<{ jobs: number; queues: number }>`
      select (select count(*) from graphile_worker._private_jobs where locked_by is not null)::int as jobs,
             (select count(*) from graphile_worker._private_job_queues where locked_by is not null)::int as queues`.execute(
      database().db,
    );
    expect(locked[0]).toEqual({ jobs: 0, queues: 0 });
    // pgjobs' log policy: graphile-worker's per-job lines (with the payload) only at debug.
    expect(worker.output()).not.toContain(PAYLOAD_MARKER);
    expect(worker.output()).toContain("worker stopped cleanly (SIGTERM)");
  }, 90_000);

  it("a job that outlives the drain is failed for retry, and the stop is still recorded", async () => {
    const worker = startGraphileWorker(database().url, { PGJOBS_SHUTDOWN_TIMEOUT_MS: "1000" });
    const workerId = await registered(worker);
    const holds = await lockHolds();
    try {
      const stuck = await addJob("credits__expire_holds", {});
      await waitRunning(stuck);
      worker.child.kill("SIGTERM");
      expect(await worker.exited).toEqual({ code: null, signal: "SIGTERM" });
      expect(await runsOf(stuck)).toMatchObject([{ state: "failed", attempt: 1 }]);
      expect((await runsOf(stuck))[0]!.error_message).toContain("jobs still running 3000 ms after the stop began");
      const { rows } = await sql<{ locked_by: string | null; attempts: number; run_later: boolean }>`
        select locked_by, attempts, run_at > now() as run_later
          from graphile_worker._private_jobs where id = ${stuck}::bigint`.execute(database().db);
      expect(rows).toEqual([{ locked_by: null, attempts: 1, run_later: true }]); // to be retried
      expect(await workerRow(workerId)).toMatchObject({ state: "stopped" });
      expect(worker.output()).toContain("1 running job(s) were failed and will be retried");
    } finally {
      await holds.release();
    }
  }, 60_000);

  it("refuses a database pgjobs has not migrated, saying what to run", async () => {
    const { adminUrl } = testServer();
    const name = await createEmptyDatabase(adminUrl);
    try {
      const worker = startGraphileWorker(databaseUrl(adminUrl, name));
      expect(await worker.exited).toEqual({ code: 1, signal: null });
      expect(worker.output()).toMatch(/missing \d+ migration\(s\).*run `pgjobs migrate` with the same DATABASE_URL/s);
    } finally {
      await dropDatabase(adminUrl, name);
    }
  }, 60_000);
});
