/**
 * Test helpers for apps that use pgjobs, the counterpart of Celery's `CELERY_TASK_ALWAYS_EAGER`
 * and `task.apply()`, against a real PostgreSQL (see test-server.ts). Run a task inline with
 * `createPgJobs(...).runInline`; here:
 *   - drainJobs: run the due jobs with the real runner, and the jobs they enqueue, up to a bound;
 *   - findEnqueued / assertEnqueued / assertNotEnqueued: what the code under test queued (pass
 *     its transaction to look before it commits).
 */
import { run } from "graphile-worker";
import { type Kysely, sql } from "kysely";
import type pg from "pg";
import { createDb } from "../db/connection.ts";
import type { Database } from "../db/schema.ts";
import { createLogger, type Logger, toGraphileLogger } from "../logger.ts";
import { AttemptLedger } from "../runner/attempt-ledger.ts";
import { buildTaskList } from "../runner/task-list.ts";
import type { PgJobs } from "../client.ts";
import type { PayloadOf, TaskList, TaskNameOf } from "../tasks/task-registry.ts";

const quiet = createLogger({ logLevel: "silent", logFormat: "json" });

// Any Kysely (or transaction) of the app's works: only pgjobs.queued_jobs is read.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

export interface DrainOptions {
  logger?: Logger;
  /** Stop with an error after this many attempts (a chain longer than this is a bug). @defaultValue `100` */
  maxJobs?: number;
  /** Compare run_at with this process's clock (a TestClock) instead of the database's. */
  useNodeTime?: boolean;
}

export class DrainLimitError extends Error {
  constructor(maxJobs: number) {
    super(
      `drainJobs ran ${maxJobs} jobs and due jobs remain: a task may be enqueueing jobs without end. ` +
        "Raise maxJobs if the chain is meant to be this long.",
    );
    this.name = "DrainLimitError";
  }
}

/**
 * Runs every due job of these tasks with the real runner (validation, history, retries scheduled
 * for later), and the jobs those enqueue, until none is due; at most `maxJobs` attempts, then a
 * DrainLimitError. Returns how many attempts ended, by state.
 */
export async function drainJobs(
  pool: pg.Pool,
  tasks: TaskList,
  options: DrainOptions = {},
): Promise<Record<string, number>> {
  const db = createDb(pool);
  const before = await lastRunId(db);
  const logger = options.logger ?? quiet;
  const maxJobs = options.maxJobs ?? 100;
  const useNodeTime = options.useNodeTime ?? false;
  let ran = 0;
  const runner = await run({
    pgPool: pool,
    taskList: buildTaskList(tasks, { db, pool, logger, ledger: new AttemptLedger(db) }),
    parsedCronItems: [],
    concurrency: 1,
    pollInterval: 50,
    noHandleSignals: true,
    logger: toGraphileLogger(logger),
    preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0, useNodeTime } },
  });
  let released = false;
  runner.events.on("job:complete", ({ worker }) => {
    ran++;
    // Stop fetching at the bound itself, before the worker asks for its next job: a poll for it
    // would let a fast chain run past the bound. The runner ends with its only worker.
    if (ran >= maxJobs && !released) {
      released = true;
      void worker.release();
    }
  });
  try {
    for (;;) {
      const work = await hasWork(db, tasks, useNodeTime ? new Date() : undefined);
      if (!work) break;
      if (ran >= maxJobs) throw new DrainLimitError(maxJobs);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await (released ? runner.promise : runner.stop());
  }
  const rows = await db
    .selectFrom("pgjobs.job_runs")
    .select(["state", (eb) => eb.fn.countAll<string>().as("count")])
    .where("id", ">", before)
    .groupBy("state")
    .execute();
  return Object.fromEntries(rows.map((row) => [row.state, Number(row.count)]));
}

/** A job of these tasks is due (and can run), or one is running. */
async function hasWork(db: Kysely<Database>, tasks: TaskList, now: Date | undefined): Promise<boolean> {
  const { rows } = await sql<{ work: boolean }>`
    select exists (
      select 1 from pgjobs.queued_jobs
       where task = any(${tasks.map((task) => task.name)}::text[])
         and (locked_by is not null
              or (run_at <= coalesce(${now ?? null}::timestamptz, now()) and attempts < max_attempts))
    ) as work`.execute(db);
  return rows[0]?.work ?? false;
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
  maxAttempts: number;
  queue: string | null;
  key: string | null;
}

/** Jobs for a task still in the queue (not yet completed), oldest first. */
export async function findEnqueued(db: AnyDb, taskName: string): Promise<EnqueuedJobView[]> {
  const { rows } = await sql<{
    id: string;
    payload: unknown;
    run_at: Date;
    attempts: number;
    max_attempts: number;
    queue_name: string | null;
    key: string | null;
  }>`
    select id, payload, run_at, attempts, max_attempts, queue as queue_name, key
      from pgjobs.queued_jobs
     where task = ${taskName}
     order by id`.execute(db);
  return rows.map((row) => ({
    id: String(row.id),
    payload: row.payload,
    runAt: row.run_at,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    queue: row.queue_name,
    key: row.key,
  }));
}

/**
 * Throws unless a job for the task is queued whose payload contains `payloadSubset` (a deep
 * partial match); returns the first such job.
 */
export async function assertEnqueued(
  db: AnyDb,
  taskName: string,
  payloadSubset: object = {},
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

/** Throws if a job for the task is queued whose payload contains `payloadSubset`. */
export async function assertNotEnqueued(db: AnyDb, taskName: string, payloadSubset: object = {}): Promise<void> {
  const jobs = (await findEnqueued(db, taskName)).filter((job) => contains(job.payload, payloadSubset));
  if (jobs.length > 0) {
    throw new Error(
      `Expected no queued "${taskName}" job with payload containing ${JSON.stringify(payloadSubset)}; ` +
        `found job ${jobs.map((job) => `${job.id} ${JSON.stringify(job.payload)}`).join(", ")}.`,
    );
  }
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

/** A partial payload to match: any subset of its fields, at any depth. */
export type PayloadMatch<T> = T extends object ? { [K in keyof T]?: PayloadMatch<T[K]> } : T;

/** The test kit bound to one app's tasks (like Oban.Testing to its repo): task names and payloads are typed. */
export interface TestKit<Tasks extends TaskList> {
  /** Runs the task now, its payload through the same JSON round trip and validation as a queued job. */
  runInline: PgJobs<Tasks>["runInline"];
  /** Runs due jobs of the app's tasks, and the jobs they enqueue, up to `maxJobs`; see drainJobs. */
  drainJobs(pool: pg.Pool, options?: DrainOptions): Promise<Record<string, number>>;
  findEnqueued(db: AnyDb, task: TaskNameOf<Tasks>): Promise<EnqueuedJobView[]>;
  assertEnqueued<Name extends TaskNameOf<Tasks>>(
    db: AnyDb,
    task: Name,
    payload?: PayloadMatch<PayloadOf<Tasks, Name>>,
  ): Promise<EnqueuedJobView>;
  assertNotEnqueued<Name extends TaskNameOf<Tasks>>(
    db: AnyDb,
    task: Name,
    payload?: PayloadMatch<PayloadOf<Tasks, Name>>,
  ): Promise<void>;
}

/**
 * @example
 * const kit = createTestKit(jobs);
 * await db.transaction().execute(async (trx) => {
 *   await signUp(trx, "ada@example.com");
 *   await kit.assertEnqueued(trx, "emails__send_welcome", { to: "ada@example.com" });
 * });
 */
export function createTestKit<Tasks extends TaskList>(jobs: PgJobs<Tasks>): TestKit<Tasks> {
  return {
    runInline: jobs.runInline.bind(jobs),
    drainJobs: (pool, options) => drainJobs(pool, jobs.tasks, options),
    findEnqueued,
    assertEnqueued: (db, task, payload) => assertEnqueued(db, task, payload ?? {}),
    assertNotEnqueued: (db, task, payload) => assertNotEnqueued(db, task, payload ?? {}),
  };
}
