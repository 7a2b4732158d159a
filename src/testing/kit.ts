/**
 * Test helpers for apps that use pgjobs, the counterpart of Celery's `CELERY_TASK_ALWAYS_EAGER`
 * and `task.apply()`, but against a real PostgreSQL (see test-server.ts):
 *   - runInline: run one task now, in this process, without the queue (returns its result);
 *   - drainQueue: run every due job with the real runner until none is left (history included);
 *   - findEnqueued / assertEnqueued: what the code under test put in the queue.
 */
import { runOnce } from "graphile-worker";
import { type Kysely, sql } from "kysely";
import type pg from "pg";
import type { Database } from "../db/schema.ts";
import { createLogger, type Logger, toGraphileLogger } from "../logger.ts";
import { AttemptLedger } from "../runner/attempt-ledger.ts";
import { buildTaskList } from "../runner/task-list.ts";
import type { TaskDefinition } from "../tasks/define-task.ts";
import { tasks as registeredTasks } from "../tasks/index.ts";

export { runInline } from "../runner/run-inline.ts";

const quiet = createLogger({ logLevel: "silent", logFormat: "json" });

/**
 * Runs every job that is due, with the real runner (validation, history, retries scheduled for
 * later), until none is due. Returns how many attempts ended, by state.
 */
export async function drainQueue(
  pool: pg.Pool,
  db: Kysely<Database>,
  options: { tasks?: readonly TaskDefinition[]; logger?: Logger } = {},
): Promise<Record<string, number>> {
  const before = await lastRunId(db);
  const logger = options.logger ?? quiet;
  await runOnce({
    pgPool: pool,
    taskList: buildTaskList(options.tasks ?? registeredTasks, { db, pool, logger, ledger: new AttemptLedger(db) }),
    parsedCronItems: [],
    logger: toGraphileLogger(logger),
    preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
  });
  const rows = await db
    .selectFrom("pgjobs.job_runs")
    .select(["state", (eb) => eb.fn.countAll<string>().as("count")])
    .where("id", ">", before)
    .groupBy("state")
    .execute();
  return Object.fromEntries(rows.map((row) => [row.state, Number(row.count)]));
}

async function lastRunId(db: Kysely<Database>): Promise<string> {
  const row = await db
    .selectFrom("pgjobs.job_runs")
    .select((eb) => eb.fn.coalesce(eb.fn.max("id"), sql<string>`0`).as("id"))
    .executeTakeFirstOrThrow();
  return String(row.id);
}

export interface EnqueuedJobView {
  id: string;
  payload: unknown;
  runAt: Date;
  attempts: number;
  key: string | null;
}

/** Jobs for a task still in the queue (not yet completed), oldest first. */
export async function findEnqueued(db: Kysely<Database>, taskName: string): Promise<EnqueuedJobView[]> {
  const { rows } = await sql<{ id: string; payload: unknown; run_at: Date; attempts: number; key: string | null }>`
    select j.id, j.payload, j.run_at, j.attempts, j.key
      from graphile_worker._private_jobs j
      join graphile_worker._private_tasks t on t.id = j.task_id
     where t.identifier = ${taskName}
     order by j.id`.execute(db);
  return rows.map((row) => ({
    id: row.id,
    payload: row.payload,
    runAt: row.run_at,
    attempts: row.attempts,
    key: row.key,
  }));
}

/**
 * Throws unless a job for the task is queued whose payload contains `payloadSubset` (a deep
 * partial match); returns the first such job.
 */
export async function assertEnqueued(
  db: Kysely<Database>,
  taskName: string,
  payloadSubset: Record<string, unknown> = {},
): Promise<EnqueuedJobView> {
  const jobs = await findEnqueued(db, taskName);
  const match = jobs.find((job) => contains(job.payload, payloadSubset));
  if (!match) {
    throw new Error(
      `Expected a queued "${taskName}" job with payload containing ${JSON.stringify(payloadSubset)}; ` +
        (jobs.length === 0
          ? "no job for that task is queued."
          : `queued payloads were: ${jobs.map((job) => JSON.stringify(job.payload)).join(", ")}.`),
    );
  }
  return match;
}

function contains(actual: unknown, expected: unknown): boolean {
  if (expected === null || typeof expected !== "object") return Object.is(actual, expected);
  if (actual === null || typeof actual !== "object") return false;
  if (Array.isArray(expected)) {
    return (
      Array.isArray(actual) &&
      expected.length === actual.length &&
      expected.every((item, i) => contains(actual[i], item))
    );
  }
  return Object.entries(expected).every(([key, value]) => contains((actual as Record<string, unknown>)[key], value));
}
