/**
 * Stopping a worker: the first SIGTERM drains (running jobs finish, prefetched ones go back
 * unstarted, exit 0); a job that will not stop is failed for retry once the shutdown timeout
 * has passed (exit 3); a second SIGTERM fails the running jobs at once and the process is gone
 * within 3 seconds (exit 3). Never a job left locked by a process that is gone.
 */
import { sql } from "kysely";
import { beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../../src/cli/exit-codes.ts";
import { syncTaskRegistry } from "../../src/enqueue/sql-allowlist.ts";
import { faultTasks } from "../fixtures/fault-tasks.ts";
import { useTestDatabase } from "../support/database.ts";
import { waitFor } from "../support/wait.ts";
import { useWorkerProcesses } from "./worker-process.ts";

const database = useTestDatabase();
const startWorker = useWorkerProcesses();

beforeAll(async () => {
  await syncTaskRegistry(database().db, faultTasks);
});

async function enqueueSleep(ms: number, honourSignal: boolean): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    select (graphile_worker.add_job('fault__sleep', json_build_object('ms', ${ms}::int, 'honourSignal', ${honourSignal}::boolean))).id`.execute(
    database().db,
  );
  return rows[0]!.id;
}

async function jobRow(id: string) {
  const { rows } = await sql<{ locked_by: string | null; attempts: number; run_later: boolean; last_error: string }>`
    select locked_by, attempts, run_at > now() as run_later, last_error
      from graphile_worker._private_jobs where id = ${id}::bigint`.execute(database().db);
  return rows[0];
}

async function waitRunning(id: string) {
  await waitFor(`job ${id} to run`, async () => {
    const row = await database()
      .db.selectFrom("pgjobs.runs")
      .select("job_id")
      .where("job_id", "=", id)
      .where("state", "=", "running")
      .executeTakeFirst();
    return row ? true : undefined;
  });
}

describe("stopping a worker", () => {
  it("first SIGTERM drains: the running job finishes, prefetched jobs go back unstarted, exit 0", async () => {
    const running = await enqueueSleep(1500, true);
    const worker = await startWorker(database().url, { PGJOBS_CONCURRENCY: "1", PGJOBS_LOCAL_QUEUE_SIZE: "5" });
    await waitRunning(running);
    const waiting = await Promise.all([1, 2, 3].map(() => enqueueSleep(10, true)));
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toEqual({ code: EXIT.OK, signal: null });
    const runs = await database().db.selectFrom("pgjobs.job_runs").select(["job_id", "state"]).execute();
    expect(runs).toEqual([{ job_id: running, state: "succeeded" }]);
    for (const id of waiting) expect(await jobRow(id)).toMatchObject({ locked_by: null, attempts: 0 });
    const stopped = await database()
      .db.selectFrom("pgjobs.workers")
      .select(["state", "stop_reason"])
      .where("id", "=", worker.id)
      .executeTakeFirstOrThrow();
    expect(stopped).toEqual({ state: "stopped", stop_reason: "SIGTERM" });
  }, 60_000);

  it("a job that ignores its signal is failed for retry once the shutdown timeout passes (exit 3)", async () => {
    const stuck = await enqueueSleep(600_000, false);
    const worker = await startWorker(database().url, { PGJOBS_SHUTDOWN_TIMEOUT_MS: "1000" });
    await waitRunning(stuck);
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toEqual({ code: EXIT.FORCED, signal: null });
    expect(await jobRow(stuck)).toMatchObject({ locked_by: null, attempts: 1, run_later: true });
    const run = await database()
      .db.selectFrom("pgjobs.job_runs")
      .select(["state", "will_retry", "error_message"])
      .where("job_id", "=", stuck)
      .executeTakeFirstOrThrow();
    expect(run).toMatchObject({ state: "failed", will_retry: true });
    expect(run.error_message).toContain("jobs still running");
  }, 60_000);

  it("a second SIGTERM fails the running jobs for retry and ends the process within 3 s (exit 3)", async () => {
    const stuck = await enqueueSleep(600_000, false);
    const worker = await startWorker(database().url, { PGJOBS_SHUTDOWN_TIMEOUT_MS: "600000" });
    await waitRunning(stuck);
    worker.child.kill("SIGTERM");
    await waitFor("the drain to begin", () => (worker.output().includes("Send the signal again") ? true : undefined));
    worker.child.kill("SIGTERM");
    const secondSignalAt = Date.now();
    const exit = await worker.exited;
    expect(exit).toEqual({ code: EXIT.FORCED, signal: null });
    expect(Date.now() - secondSignalAt).toBeLessThan(3000);
    expect(await jobRow(stuck)).toMatchObject({ locked_by: null, run_later: true });
    const run = await database()
      .db.selectFrom("pgjobs.job_runs")
      .select(["state", "will_retry", "error_message"])
      .where("job_id", "=", stuck)
      .executeTakeFirstOrThrow();
    expect(run).toMatchObject({ state: "failed", will_retry: true });
    expect(run.error_message).toContain("SIGTERM twice");
  }, 60_000);
});
