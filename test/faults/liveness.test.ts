/**
 * Liveness with real pauses (SIGSTOP/SIGCONT): a worker frozen for less than the bound keeps its
 * jobs; one frozen for longer is reaped, its job runs elsewhere exactly once in effect, and when
 * it wakes it learns it was reaped and exits non-zero without completing what is no longer its
 * own. A plain graphile-worker process, which never heartbeats, is never reaped.
 */
import { run } from "graphile-worker";
import { sql } from "kysely";
import { beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../../src/cli/exit-codes.ts";
import { syncTaskRegistry } from "../../src/enqueue/sql-allowlist.ts";
import { waitForResult } from "../../src/history/wait-for-result.ts";
import { toGraphileLogger } from "../../src/logger.ts";
import { faultTasks } from "../fixtures/fault-tasks.ts";
import { useTestDatabase } from "../support/database.ts";
import { waitFor } from "../support/wait.ts";
import { quietLogger } from "../support/worker.ts";
import { useWorkerProcesses } from "./worker-process.ts";

const database = useTestDatabase();
const startWorker = useWorkerProcesses({ perTest: true });
const LIVENESS_MS = 4000;
const env = { PGJOBS_LIVENESS_TIMEOUT_MS: String(LIVENESS_MS) };

beforeAll(async () => {
  await syncTaskRegistry(database().db, faultTasks);
});

async function addEffect(marker: string, ms: number): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    select (graphile_worker.add_job('fault__effect', json_build_object('marker', ${marker}::text, 'ms', ${ms}::int))).id`.execute(
    database().db,
  );
  return rows[0]!.id;
}

async function runningOn(jobId: string): Promise<string> {
  return waitFor(`job ${jobId} to run`, async () => {
    const row = await database()
      .db.selectFrom("pgjobs.runs")
      .select("worker_id")
      .where("job_id", "=", jobId)
      .where("state", "=", "running")
      .executeTakeFirst();
    return row?.worker_id ?? undefined;
  });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a frozen worker", () => {
  it("frozen for less than the liveness bound keeps its jobs", async () => {
    // The watcher is busy (concurrency 1), so the worker about to be frozen takes the job.
    const watcher = await startWorker(database().url, { ...env, PGJOBS_CONCURRENCY: "1" });
    const busy = await addEffect("keeps the watcher busy", 8000);
    await runningOn(busy);
    const frozen = await startWorker(database().url, env);
    const id = await addEffect("short pause", 2000);
    expect(await runningOn(id)).toBe(frozen.id);
    frozen.child.kill("SIGSTOP");
    await pause(LIVENESS_MS / 2);
    frozen.child.kill("SIGCONT");
    expect(await waitForResult(database().pool, id, { timeoutMs: 20_000 })).toMatchObject({ state: "succeeded" });
    const runs = await database()
      .db.selectFrom("pgjobs.job_runs")
      .select(["state", "worker_id"])
      .where("job_id", "=", id)
      .execute();
    expect(runs).toEqual([{ state: "succeeded", worker_id: frozen.id }]);
    expect(watcher.output()).not.toContain(`worker ${frozen.id}`);
    await waitForResult(database().pool, busy, { timeoutMs: 20_000 });
  }, 60_000);

  it("frozen for longer is reaped: its job runs elsewhere once in effect, and on waking it exits non-zero", async () => {
    const survivor = await startWorker(database().url, { ...env, PGJOBS_CONCURRENCY: "1" });
    const busy = await addEffect("keeps the survivor busy", 3000);
    await runningOn(busy);
    const frozen = await startWorker(database().url, env);
    const id = await addEffect("long pause", 3000);
    expect(await runningOn(id)).toBe(frozen.id);
    frozen.child.kill("SIGSTOP");

    // Reaped once silent past the bound; the survivor then runs the job (its effect commits).
    expect(await waitForResult(database().pool, id, { timeoutMs: 30_000 })).toMatchObject({ state: "succeeded" });
    expect(survivor.output()).toContain(`worker ${frozen.id}`);
    frozen.child.kill("SIGCONT");
    const exit = await frozen.exited;
    expect(exit.code).toBe(EXIT.FAILURE);
    expect(frozen.output()).toContain("was reaped");

    const effects = await database()
      .db.selectFrom("public.effects")
      .select("message")
      .where("job_id", "=", id)
      .execute();
    expect(effects).toEqual([{ message: "long pause" }]);
    const runs = await database()
      .db.selectFrom("pgjobs.job_runs")
      .select(["attempt", "state", "worker_id"])
      .where("job_id", "=", id)
      .orderBy("id")
      .execute();
    expect(runs).toEqual([
      { attempt: 1, state: "abandoned", worker_id: frozen.id },
      { attempt: 2, state: "succeeded", worker_id: survivor.id },
    ]);
  }, 60_000);
});

describe("a plain graphile-worker process sharing the database", () => {
  it("never heartbeats, so pgjobs never reaps it", async () => {
    const { pool } = database();
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const plain = await run({
      pgPool: pool,
      taskList: { fault__block: () => held },
      concurrency: 1,
      parsedCronItems: [],
      logger: toGraphileLogger(quietLogger),
    });
    try {
      await provePlainWorkerKeepsItsJob();
    } finally {
      release();
      await plain.stop();
    }
  }, 60_000);
});

async function provePlainWorkerKeepsItsJob() {
  const { db, url } = database();
  const { rows } = await sql<{ id: string }>`
      select (graphile_worker.add_job('fault__block', '{"n": 1}'::json)).id`.execute(db);
  const id = rows[0]!.id;
  const lockedBy = await waitFor("the plain worker to take the job", async () => {
    const { rows: locked } = await sql<{ locked_by: string | null }>`
        select locked_by from graphile_worker._private_jobs where id = ${id}::bigint`.execute(db);
    return locked[0]?.locked_by ?? undefined;
  });
  // A pgjobs worker with a short bound, heartbeating (and reaping) well past it.
  const pgjobsWorker = await startWorker(url, { PGJOBS_LIVENESS_TIMEOUT_MS: "1000" });
  await waitFor("the pgjobs worker to have reaped for three bounds", async () => {
    const { rows: beats } = await sql<{ long: boolean }>`
        select last_seen_at - started_at > interval '3 seconds' as long from pgjobs.workers where id = ${pgjobsWorker.id}`.execute(
      db,
    );
    return beats[0]?.long ? true : undefined;
  });
  const { rows: still } = await sql<{ locked_by: string | null }>`
      select locked_by from graphile_worker._private_jobs where id = ${id}::bigint`.execute(db);
  expect(still[0]?.locked_by).toBe(lockedBy);
}
