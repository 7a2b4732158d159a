import { sql } from "kysely";
import { beforeAll, describe, expect, it } from "vitest";
import { appJobs } from "./support/app.ts";
import { syncTaskRegistry } from "../src/enqueue/sql-allowlist.ts";
import { JobNotFoundError, JobResultTimeoutError, waitForResult } from "../src/history/wait-for-result.ts";
import { finishedSlowTasks, testTasks } from "./fixtures/test-tasks.ts";
import { cleanEnv, runCli } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

beforeAll(async () => {
  await syncTaskRegistry(database().db, testTasks);
});

async function runsOf(jobId: string) {
  return database().db.selectFrom("pgjobs.job_runs").selectAll().where("job_id", "=", jobId).orderBy("id").execute();
}

async function addJobInSql(task: string, payload: unknown): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    select id from graphile_worker.add_job(${task}, ${JSON.stringify(payload)}::json)`.execute(database().db);
  return rows[0]!.id;
}

/** Makes a job that is waiting out its retry backoff due now (graphile-worker's own function). */
async function retryNow(jobId: string) {
  await waitFor("the failed attempt to be released", async () => {
    const { rows } = await sql<{ locked_by: string | null }>`
      select locked_by from graphile_worker._private_jobs where id = ${jobId}::bigint`.execute(database().db);
    return rows[0] && rows[0].locked_by === null ? true : undefined;
  });
  await sql`select graphile_worker.reschedule_jobs(array[${jobId}::bigint], run_at => now())`.execute(database().db);
}

describe("every attempt leaves a row", () => {
  beforeAll(async () => {
    await startWorker(database(), { tasks: testTasks, concurrency: 2 });
  });

  it("success: one succeeded row with the result, timings and worker; waitForResult returns it", async () => {
    const job = await appJobs.enqueue(database().db, "pgjobs__ping", { message: "history" });
    const outcome = await waitForResult(database().pool, job.id, { timeoutMs: 20_000 });
    expect(outcome).toMatchObject({ state: "succeeded", final: true, attempts: 1 });
    expect(outcome.result).toEqual({ pong: "history" });
    const runs = await runsOf(job.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      task: "pgjobs__ping",
      attempt: 1,
      state: "succeeded",
      payload: { message: "history" },
      error_message: null,
    });
    expect(runs[0]!.worker_id).toMatch(/\S/);
    expect(runs[0]!.finished_at!.getTime()).toBeGreaterThanOrEqual(runs[0]!.started_at!.getTime());
    expect(runs[0]!.duration_ms).toBeGreaterThanOrEqual(0);
  });

  it("failure then retry: a failed row that will retry, then a succeeded row", async () => {
    const jobId = await addJobInSql("test__flaky", { succeedOnAttempt: 2 });
    await waitFor("attempt 1 to fail", async () => ((await runsOf(jobId))[0]?.state === "failed" ? true : undefined));
    await retryNow(jobId);
    const outcome = await waitForResult(database().pool, jobId, { timeoutMs: 20_000 });
    expect(outcome).toMatchObject({ state: "succeeded", result: { succeededOn: 2 } });
    const runs = await runsOf(jobId);
    expect(runs.map((run) => [run.attempt, run.state, run.will_retry])).toEqual([
      [1, "failed", true],
      [2, "succeeded", false],
    ]);
    expect(runs[0]!.error_message).toBe("flaky failure on attempt 1");
    expect(runs[0]!.error_stack).toContain("flaky failure on attempt 1");
    // The failed attempt's effect rolled back with its transaction; only attempt 2's remains.
    const effects = await database()
      .db.selectFrom("public.effects")
      .select("message")
      .where("job_id", "=", jobId)
      .execute();
    expect(effects).toEqual([{ message: "flaky attempt 2" }]);
  });

  it("final failure: the last attempt is failed with no retry, and the job stays in the queue", async () => {
    const { rows } = await sql<{ id: string }>`
      select id from graphile_worker.add_job('test__flaky', '{"succeedOnAttempt": 99}'::json, max_attempts => 2)`.execute(
      database().db,
    );
    const jobId = rows[0]!.id;
    await waitFor("attempt 1 to fail", async () => ((await runsOf(jobId))[0]?.state === "failed" ? true : undefined));
    await retryNow(jobId);
    const outcome = await waitForResult(database().pool, jobId, { timeoutMs: 20_000 });
    expect(outcome).toMatchObject({ state: "failed", final: true, attempts: 2, maxAttempts: 2 });
    expect(outcome.error?.message).toBe("flaky failure on attempt 2");
    const runs = await runsOf(jobId);
    expect(runs.map((run) => [run.attempt, run.state, run.will_retry])).toEqual([
      [1, "failed", true],
      [2, "failed", false],
    ]);
    const status = await database()
      .db.selectFrom("pgjobs.job_status")
      .selectAll()
      .where("job_id", "=", jobId)
      .executeTakeFirstOrThrow();
    expect(status).toMatchObject({ in_queue: true, state: "failed" });
  });

  it("rejection: an invalid payload is rejected once, not retried, visible and retryable by a person", async () => {
    const jobId = await addJobInSql("pgjobs__ping", { text: "no message field" });
    const outcome = await waitForResult(database().pool, jobId, { timeoutMs: 20_000 });
    expect(outcome).toMatchObject({ state: "rejected", final: true, attempts: 1 });
    expect(outcome.error?.message).toMatch(/invalid payload and will not be retried[\s\S]*message/);
    expect((await runsOf(jobId)).map((run) => [run.attempt, run.state, run.will_retry])).toEqual([
      [1, "rejected", false],
    ]);
    const status = await database()
      .db.selectFrom("pgjobs.job_status")
      .selectAll()
      .where("job_id", "=", jobId)
      .executeTakeFirstOrThrow();
    expect(status).toMatchObject({ in_queue: true, state: "rejected", attempts: 1, max_attempts: 1 });

    // A person fixes the payload and gives it attempts again: it runs and succeeds.
    await sql`update graphile_worker._private_jobs set payload = '{"message":"fixed"}' where id = ${jobId}::bigint`.execute(
      database().db,
    );
    await appJobs.retry(database().db, jobId);
    const retried = await waitForResult(database().pool, jobId, { timeoutMs: 20_000 });
    expect(retried).toMatchObject({ state: "succeeded", result: { pong: "fixed" } });
    expect((await runsOf(jobId)).map((run) => [run.attempt, run.state])).toEqual([
      [1, "rejected"],
      [2, "succeeded"],
    ]);
  });

  it("a permanent error from the task is rejected without retries", async () => {
    const jobId = await addJobInSql("test__refuse", {});
    const outcome = await waitForResult(database().pool, jobId, { timeoutMs: 20_000 });
    expect(outcome).toMatchObject({ state: "rejected", attempts: 1, maxAttempts: 1 });
    expect(outcome.error?.message).toBe("account 7 is closed; this transfer can never succeed");
  });
});

describe("timeouts", () => {
  it.each([true, false])(
    "an attempt past timeoutMs is timed_out and its transaction rolled back (task honours its signal: %s)",
    async (honourSignal) => {
      const marker = `slow ${honourSignal}`;
      // pgjobs.enqueue applies the task's own maxAttempts (1) when the caller gives none.
      const { rows } = await sql<{ id: string }>`
        select pgjobs.enqueue('test__slow', ${JSON.stringify({ marker, honourSignal, ms: 1500 })}::jsonb) as id`.execute(
        database().db,
      );
      const jobId = rows[0]!.id;
      const outcome = await waitForResult(database().pool, jobId, { timeoutMs: 20_000 });
      expect(outcome).toMatchObject({ state: "timed_out", final: true });
      expect(outcome.error?.message).toContain(`ran longer than its 200 ms timeout on attempt 1`);
      // Wait for the task's code to return (it may ignore the signal), then look for its effect.
      await waitFor("the slow task's code to return", () => (finishedSlowTasks.has(marker) ? true : undefined));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const effects = await database()
        .db.selectFrom("public.effects")
        .select("message")
        .where("message", "=", marker)
        .execute();
      expect(effects).toEqual([]);
      expect((await runsOf(jobId)).map((run) => [run.attempt, run.state])).toEqual([[1, "timed_out"]]);
    },
  );
});

describe("waitForResult", () => {
  it("times out cleanly with the job's state, and says when a job does not exist", async () => {
    const job = await appJobs.enqueue(
      database().db,
      "pgjobs__ping",
      { message: "later" },
      { runAt: new Date(Date.now() + 3600_000) },
    );
    const waiting = waitForResult(database().pool, job.id, { timeoutMs: 300, pollIntervalMs: 50 });
    await expect(waiting).rejects.toBeInstanceOf(JobResultTimeoutError);
    await expect(waiting).rejects.toThrow(
      `Job ${job.id} (pgjobs__ping) has not finished after 300 ms: it is scheduled`,
    );
    await expect(waitForResult(database().pool, "987654321")).rejects.toBeInstanceOf(JobNotFoundError);
    // No listener connection is left behind.
    // The listening connection said UNLISTEN and went back to the pool: nobody listens any more.
    const { rows } = await sql<{ listeners: string }>`
      select count(*) as listeners from pg_stat_activity
       where datname = current_database() and query ilike 'listen pgjobs_job_finished%'`.execute(database().db);
    expect(rows[0]?.listeners).toBe("0");
  });
});

describe("reading history", () => {
  it("pgjobs.task_summary counts attempts by state with success rate and duration percentiles", async () => {
    const { rows } = await sql<{
      task: string;
      attempts: string;
      succeeded: string;
      failed: string;
      rejected: string;
      success_rate: string;
      p50_ms: number;
      p95_ms: number;
    }>`select * from pgjobs.task_summary(interval '1 hour') where task = 'test__flaky'`.execute(database().db);
    // From the tests above: flaky succeeded on attempt 2 (1 failed, 1 succeeded), then failed twice.
    expect(rows[0]).toMatchObject({
      attempts: "4",
      succeeded: "1",
      failed: "3",
      rejected: "0",
      success_rate: "0.2500",
    });
    expect(rows[0]!.p95_ms).toBeGreaterThanOrEqual(rows[0]!.p50_ms);
  });

  it("`pgjobs result --wait` prints the result and exits 0; a rejected job exits 1 with its error", async () => {
    const job = await appJobs.enqueue(database().db, "pgjobs__ping", { message: "cli result" });
    const ok = await runCli(
      ["result", job.id, "--wait", "--timeout", "20"],
      cleanEnv({ DATABASE_URL: database().url }),
    );
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`Job ${job.id} (pgjobs__ping): succeeded, attempt 1 of 3`);
    expect(ok.stdout).toContain('"pong":"cli result"');

    const rejected = await addJobInSql("test__refuse", {});
    const bad = await runCli(["result", rejected, "--wait", "--json"], cleanEnv({ DATABASE_URL: database().url }));
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({
      state: "rejected",
      error: { message: expect.stringContaining("closed") as string },
    });

    const shown = await runCli(["job", rejected], cleanEnv({ DATABASE_URL: database().url }));
    expect(shown.stdout).toContain("attempt 1: rejected");
  });
});

describe("a person retries and cancels", () => {
  it("retry gives a rejected job fresh attempts; a finished job is enqueued again", async () => {
    const jobId = await addJobInSql("pgjobs__ping", { note: "missing message" });
    expect(await waitForResult(database().pool, jobId, { timeoutMs: 20_000 })).toMatchObject({ state: "rejected" });
    await sql`update graphile_worker._private_jobs set payload = '{"message":"fixed by hand"}' where id = ${jobId}::bigint`.execute(
      database().db,
    );
    expect(await appJobs.retry(database().db, jobId)).toEqual({ kind: "rescheduled", jobId });
    const retried = await waitForResult(database().pool, jobId, { timeoutMs: 20_000 });
    expect(retried).toMatchObject({ state: "succeeded", result: { pong: "fixed by hand" } });
    expect((await runsOf(jobId)).map((run) => [run.attempt, run.state])).toEqual([
      [1, "rejected"],
      [2, "succeeded"],
    ]);

    const again = await appJobs.retry(database().db, jobId);
    expect(again.kind).toBe("enqueued_again");
    expect(again.jobId).not.toBe(jobId);
    expect(await waitForResult(database().pool, again.jobId, { timeoutMs: 20_000 })).toMatchObject({
      state: "succeeded",
      result: { pong: "fixed by hand" },
    });
  });

  it("cancel removes a waiting job and history says cancelled; a missing job is refused by name", async () => {
    const job = await appJobs.enqueue(
      database().db,
      "pgjobs__ping",
      { message: "never" },
      { runAt: new Date(Date.now() + 3600_000) },
    );
    await appJobs.cancel(database().db, job.id);
    const outcome = await waitForResult(database().pool, job.id, { timeoutMs: 5000 });
    expect(outcome).toMatchObject({ state: "cancelled", final: true });
    await expect(appJobs.cancel(database().db, job.id)).rejects.toThrow(`Job ${job.id} is not in the queue`);
  });
});
