/**
 * The path matrix: every statement of graphile-worker (and of its operators) that changes a job,
 * and the exact history it must leave. One row per attempt that started, with its real outcome;
 * operator actions recorded as what they were; never a phantom, never a success shown as a
 * failure. Workers run in this process, so the test decides when each task body ends.
 */
import { runOnce } from "graphile-worker";
import { type Kysely, sql } from "kysely";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { Database } from "../src/db/schema.ts";
import { cancelJob } from "../src/enqueue/job-actions.ts";
import { syncTaskRegistry } from "../src/enqueue/sql-allowlist.ts";
import { getJobOutcome, waitForResult } from "../src/history/wait-for-result.ts";
import { toGraphileLogger } from "../src/logger.ts";
import { defineTask } from "../src/tasks/define-task.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";
import { quietLogger, useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

/**
 * A job enqueued with `{ fail: true }` fails until its id is here. Decided by the payload, not
 * by a set filled after the enqueue, because the worker may run the job before the test's next line.
 */
const healed = new Set<string>();
/** Task bodies the test holds open, by job id: resolve to succeed, reject to fail. */
const gates = new Map<string, { pass: () => void; fail: (error: Error) => void }>();

const flakyTask = defineTask({
  name: "path__flaky",
  payload: z.looseObject({ fail: z.boolean().optional() }),
  options: { maxAttempts: 3 },
  run(payload, ctx) {
    return payload.fail === true && !healed.has(ctx.job.id)
      ? Promise.reject(new Error(`failing on purpose (${ctx.job.id})`))
      : Promise.resolve(null);
  },
});

const gatedTask = defineTask({
  name: "path__gated",
  payload: z.looseObject({}),
  options: { maxAttempts: 3 },
  run(_payload, ctx) {
    return new Promise<null>((resolve, reject) => {
      gates.set(ctx.job.id, { pass: () => resolve(null), fail: reject });
    });
  },
});

const slowTransactionTask = defineTask({
  name: "path__slow_transaction",
  payload: z.object({ ms: z.number() }),
  options: { transactional: true },
  async run(payload) {
    await new Promise((resolve) => setTimeout(resolve, payload.ms));
    return { slept: payload.ms };
  },
});

const pathTasks = [flakyTask, gatedTask, slowTransactionTask];

/** Registered (SQL may enqueue it) but run by no pgjobs worker: a plain graphile-worker process runs it. */
const plainTask = defineTask({ name: "path__plain", payload: z.looseObject({}), run: () => Promise.resolve(null) });

const db = () => database().db;

beforeAll(async () => {
  await syncTaskRegistry(db(), [...pathTasks, plainTask]);
  await startWorker(database(), { tasks: pathTasks, concurrency: 4, localQueueSize: 1 });
});

async function addJob(
  task: string,
  options: { key?: string; maxAttempts?: number; payload?: object; runAt?: "tomorrow" } = {},
) {
  const { rows } = await sql<{ id: string }>`
    select (graphile_worker.add_job(${task}, ${JSON.stringify(options.payload ?? {})}::json,
             job_key => ${options.key ?? null}::text, max_attempts => ${options.maxAttempts ?? null}::int,
             run_at => case when ${options.runAt ?? null}::text = 'tomorrow' then now() + interval '1 day' end)).id`.execute(
    db(),
  );
  return rows[0]!.id;
}

/** The job's history as "attempt:state" (and will_retry for failures). */
async function history(jobId: string): Promise<string[]> {
  const rows = await db()
    .selectFrom("pgjobs.job_runs")
    .select(["attempt", "state", "will_retry"])
    .where("job_id", "=", jobId)
    .orderBy("id")
    .execute();
  return rows.map(
    (row) => `${row.attempt}:${row.state}${row.state === "failed" ? (row.will_retry ? "+retry" : "") : ""}`,
  );
}

async function notes(jobId: string): Promise<string> {
  const rows = await db().selectFrom("pgjobs.job_runs").select("note").where("job_id", "=", jobId).execute();
  return rows.map((row) => row.note ?? "").join(" | ");
}

async function waitHistory(jobId: string, expected: string[]) {
  await waitFor(`job ${jobId}'s history to be ${expected.join(", ")}`, async () => {
    const now = await history(jobId);
    return JSON.stringify(now) === JSON.stringify(expected) ? true : undefined;
  });
}

async function waitGate(jobId: string) {
  return waitFor(`job ${jobId}'s task body to start`, () => gates.get(jobId));
}

/** A job locked by a worker that is gone, its lock over 4 hours old. `started`: that worker had reported its body running. */
async function strandWithStaleLock(jobId: string, started: boolean) {
  await sql`select pgjobs.register_worker('pool-gone', 'test', 0, 'test', 1, '{}')`.execute(db());
  await sql`update graphile_worker._private_jobs
               set locked_by = 'pool-gone', locked_at = now() - interval '5 hours', attempts = attempts + 1
             where id = ${jobId}::bigint`.execute(db());
  if (started) {
    await sql`update pgjobs.workers set running_job_ids = array[${jobId}::bigint],
                     running_locked_at = array[(select locked_at from graphile_worker._private_jobs where id = ${jobId}::bigint)],
                     running_started_at = array[now() - interval '5 hours']
               where id = 'pool-gone'`.execute(db());
  }
}

/** graphile-worker's stale-lock sweep, the statement its workers run every few minutes. */
async function staleLockSweep(trx: Kysely<Database> = db()) {
  await sql`with j as (
              update graphile_worker._private_jobs as jobs
                 set locked_at = null, locked_by = null, run_at = greatest(run_at, now())
               where locked_at < now() - interval '4 hours')
            update graphile_worker._private_job_queues as job_queues
               set locked_at = null, locked_by = null
             where locked_at < now() - interval '4 hours'`.execute(trx);
}

/** A job that is never fetched: scheduled far ahead, so the worker leaves it alone. */
async function parkedJob() {
  return addJob("path__flaky", { runAt: "tomorrow" });
}

describe("attempts counted by pgjobs survive graphile-worker resetting attempts", () => {
  it("add_job with the same job_key while the job is retrying, then it succeeds: the failure, then the success", async () => {
    const id = await addJob("path__flaky", { key: "replace-while-retrying", payload: { fail: true } });
    await waitHistory(id, ["1:failed+retry"]);
    // The runner records the failure before the engine unlocks the job: replaced while still
    // locked, add_job would detach the key and make a new job instead.
    await waitFor(`job ${id} to be unlocked for its retry`, async () => {
      const { rows } = await sql<{ locked: boolean }>`
        select locked_by is not null as locked from graphile_worker._private_jobs where id = ${id}::bigint`.execute(
        db(),
      );
      return rows[0]?.locked === false ? true : undefined;
    });
    healed.add(id);
    expect(await addJob("path__flaky", { key: "replace-while-retrying", payload: { fixed: true } })).toBe(id);
    await waitHistory(id, ["1:failed+retry", "2:succeeded"]);
    expect(await getJobOutcome(database().pool, id)).toMatchObject({ state: "succeeded", final: true, attempts: 2 });
  });

  it("reschedule_jobs(attempts => 0) after a failure, then it succeeds: the failure, then the success", async () => {
    const id = await addJob("path__flaky", { payload: { fail: true } });
    await waitHistory(id, ["1:failed+retry"]);
    healed.add(id);
    await sql`select graphile_worker.reschedule_jobs(array[${id}::bigint], run_at => now(), attempts => 0)`.execute(
      db(),
    );
    await waitHistory(id, ["1:failed+retry", "2:succeeded"]);
  });
});

describe("changing a job while its task body runs leaves that attempt to its real end", () => {
  it.each(["pass", "fail"] as const)(
    "add_job with the same job_key while running, then the body ends (%s): one attempt, and the replacement its own",
    async (ending) => {
      const key = `replace-while-running-${ending}`;
      const id = await addJob("path__gated", { key });
      const gate = await waitGate(id);
      const replacement = await addJob("path__gated", { key, payload: { newer: true } });
      expect(replacement).not.toBe(id);
      expect(await history(id)).toEqual([]);
      if (ending === "pass") gate.pass();
      else gate.fail(new Error("the old work failed"));
      await waitHistory(id, [ending === "pass" ? "1:succeeded" : "1:failed"]);
      expect(await notes(id)).toContain(`graphile_worker.add_job detached its job key ${key}`);
      (await waitGate(replacement)).pass();
      await waitHistory(replacement, ["1:succeeded"]);
    },
  );

  it.each(["pass", "fail"] as const)(
    "remove_job(key) while running, then the body ends (%s): one attempt with its real outcome",
    async (ending) => {
      const key = `remove-while-running-${ending}`;
      const id = await addJob("path__gated", { key });
      const gate = await waitGate(id);
      await sql`select graphile_worker.remove_job(${key})`.execute(db());
      if (ending === "pass") gate.pass();
      else gate.fail(new Error("the removed work failed"));
      await waitHistory(id, [ending === "pass" ? "1:succeeded" : "1:failed"]);
      expect(await notes(id)).toContain("graphile_worker.remove_job detached its job key");
    },
  );
});

describe("operators' functions are recorded as what they did", () => {
  it("permanently_fail_jobs after a failed attempt: that attempt says it will not retry, and why", async () => {
    const id = await addJob("path__flaky", { payload: { fail: true } });
    await waitHistory(id, ["1:failed+retry"]);
    await sql`select graphile_worker.permanently_fail_jobs(array[${id}::bigint], 'customer closed the account')`.execute(
      db(),
    );
    expect(await history(id)).toEqual(["1:failed"]);
    expect(await notes(id)).toContain(
      "then marked permanently failed by graphile_worker.permanently_fail_jobs: customer closed the account",
    );
    expect(await getJobOutcome(database().pool, id)).toMatchObject({ state: "failed", final: true });
    healed.add(id);
  });

  it("permanently_fail_jobs on a job that never ran: one marked_failed row, not an attempt", async () => {
    const id = await parkedJob();
    await sql`select graphile_worker.permanently_fail_jobs(array[${id}::bigint], 'never mind')`.execute(db());
    expect(await history(id)).toEqual(["1:marked_failed"]);
    expect(await getJobOutcome(database().pool, id)).toMatchObject({
      state: "marked_failed",
      attempts: 0,
      final: true,
    });
  });

  it.each(["permanently_fail_jobs", "reschedule_jobs"])(
    "%s on a stale-locked job, then the stale-lock sweep: one abandoned attempt, no phantom",
    async (operation) => {
      const id = await parkedJob();
      await strandWithStaleLock(id, true);
      if (operation === "permanently_fail_jobs") {
        await sql`select graphile_worker.permanently_fail_jobs(array[${id}::bigint])`.execute(db());
      } else {
        await sql`select graphile_worker.reschedule_jobs(array[${id}::bigint], run_at => now() + interval '1 day', attempts => 0)`.execute(
          db(),
        );
      }
      expect(await history(id)).toEqual(["1:abandoned"]);
      await staleLockSweep();
      expect(await history(id)).toEqual(["1:abandoned"]);
      expect(await notes(id)).toContain(`then graphile_worker.${operation} changed the job`);
    },
  );

  it("complete_jobs on a job that never ran: marked complete, not run", async () => {
    const id = await parkedJob();
    await sql`select graphile_worker.complete_jobs(array[${id}::bigint])`.execute(db());
    expect(await history(id)).toEqual(["1:marked_complete"]);
    expect(await getJobOutcome(database().pool, id)).toMatchObject({ state: "marked_complete", attempts: 0 });
  });

  it("complete_jobs on a dead worker's stale-locked job: its attempt abandoned, then marked complete", async () => {
    const id = await parkedJob();
    await strandWithStaleLock(id, true);
    await sql`select graphile_worker.complete_jobs(array[${id}::bigint])`.execute(db());
    expect(await history(id)).toEqual(["1:abandoned", "2:marked_complete"]);
  });

  it("pgjobs cancel on a job with no attempts left: cancelled, recorded", async () => {
    const id = await addJob("path__flaky", { maxAttempts: 1, payload: { fail: true } });
    await waitHistory(id, ["1:failed"]);
    await cancelJob(db(), id);
    expect(await history(id)).toEqual(["1:failed", "2:cancelled"]);
    expect(await getJobOutcome(database().pool, id)).toMatchObject({ state: "cancelled", attempts: 1, final: true });
  });

  it("remove_job of a waiting job: cancelled", async () => {
    const id = await parkedJob();
    await sql`update graphile_worker._private_jobs set key = 'remove-waiting' where id = ${id}::bigint`.execute(db());
    await sql`select graphile_worker.remove_job('remove-waiting')`.execute(db());
    expect(await history(id)).toEqual(["1:cancelled"]);
    expect(await notes(id)).toContain("removed from the queue by graphile_worker.remove_job");
  });

  it("graphile-worker's cleanup of a failed job (a plain DELETE): its failure stands", async () => {
    const id = await addJob("path__flaky", { maxAttempts: 1, payload: { fail: true } });
    await waitHistory(id, ["1:failed"]);
    await sql`delete from graphile_worker._private_jobs where attempts = max_attempts and locked_at is null and id = ${id}::bigint`.execute(
      db(),
    );
    expect(await history(id)).toEqual(["1:failed"]);
  });
});

describe("cleared locks: an attempt is lost only if it had started", () => {
  it("force_unlock_workers of a dead pgjobs worker: its started attempt abandoned, its prefetched job untouched", async () => {
    const started = await parkedJob();
    const prefetched = await parkedJob();
    await strandWithStaleLock(started, true);
    await sql`update graphile_worker._private_jobs set locked_by = 'pool-gone', locked_at = now(), attempts = 1
               where id = ${prefetched}::bigint`.execute(db());
    await sql`select graphile_worker.force_unlock_workers(array['pool-gone'])`.execute(db());
    expect(await history(started)).toEqual(["1:abandoned"]);
    expect(await notes(started)).toContain("graphile_worker.force_unlock_workers");
    expect(await history(prefetched)).toEqual([]);
  });

  it("the stale-lock sweep of a worker that is not a pgjobs worker: recorded, saying it cannot know", async () => {
    const id = await parkedJob();
    await sql`update graphile_worker._private_jobs set locked_by = 'pool-plain', locked_at = now() - interval '5 hours', attempts = 1
               where id = ${id}::bigint`.execute(db());
    await staleLockSweep();
    expect(await history(id)).toEqual(["1:abandoned"]);
    expect(await notes(id)).toContain("is not a pgjobs worker");
  });
});

describe("other workers and timings", () => {
  it("a plain graphile-worker process completing a job: its success is recorded", async () => {
    const id = await addJob("path__plain");
    const recorded = await waitFor("the plain worker to run it", async () => {
      await runOnce({
        pgPool: database().pool,
        taskList: { path__plain: () => {} },
        logger: toGraphileLogger(quietLogger),
      });
      const rows = await history(id);
      return rows.length > 0 ? rows : undefined;
    });
    expect(recorded).toEqual(["1:succeeded"]);
    expect(await notes(id)).toContain("which is not a pgjobs worker");
  });

  it("a transactional task's duration is wall clock, not its transaction's start", async () => {
    const id = await addJob("path__slow_transaction", { payload: { ms: 1200 } });
    await waitForResult(database().pool, id, { timeoutMs: 20_000 });
    const run = await db()
      .selectFrom("pgjobs.job_runs")
      .select(["state", "duration_ms"])
      .where("job_id", "=", id)
      .executeTakeFirstOrThrow();
    expect(run.state).toBe("succeeded");
    expect(run.duration_ms).toBeGreaterThanOrEqual(1100);
  });
});
