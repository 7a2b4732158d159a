/**
 * `createPgJobs({ tasks })`: pgjobs for one app, made from its task list as a value. Everything
 * that needs to know the app's tasks goes through it, typed by that list: enqueue checks the task
 * name and the payload at compile time, runInline returns the task's result type, and the worker
 * runs exactly these tasks. (River takes its workers as a value the same way.)
 *
 * @example
 * const jobs = createPgJobs({ tasks: [sendWeeklyReport] as const });
 * await db.transaction().execute(async (trx) => {
 *   await trx.insertInto("reports").values(report).execute();
 *   await jobs.enqueue(trx, "reports__send_weekly", { accountId }); // rolled back with the insert
 * });
 */
import type { Kysely } from "kysely";
import type pg from "pg";
import type { Database } from "./db/schema.ts";
import { type EnqueuedJob, type EnqueueOptions, enqueueJob, enqueueJobs, validatePayload } from "./enqueue/enqueue.ts";
import { cancelJob, type RetryOutcome, retryJob } from "./enqueue/job-actions.ts";
import { syncTaskRegistry } from "./enqueue/sql-allowlist.ts";
import { type JobOutcome, waitForResult, type WaitOptions } from "./history/wait-for-result.ts";
import type { Logger } from "./logger.ts";
import { runTaskInline } from "./runner/run-inline.ts";
import { type PgjobsWorker, startWorker, type WorkerSettings } from "./runner/worker.ts";
import { type PayloadOf, type ResultOf, type TaskList, type TaskNameOf, TaskRegistry } from "./tasks/task-registry.ts";

// Any Kysely works for the app's own transactions: its Database type is not pgjobs' to know.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/** One job of an enqueueMany batch, typed by the app's tasks. */
export type JobOf<Tasks extends TaskList> = {
  [Name in TaskNameOf<Tasks>]: {
    task: Name;
    payload: PayloadOf<Tasks, Name>;
    options?: Omit<EnqueueOptions, "jobKeyMode">;
  };
}[TaskNameOf<Tasks>];

export interface PgJobs<Tasks extends TaskList> {
  readonly tasks: Tasks;
  readonly registry: TaskRegistry;
  /** Enqueues a job in `db`: pass the transaction that writes the data that caused it. */
  enqueue<Name extends TaskNameOf<Tasks>>(
    db: AnyDb,
    task: Name,
    payload: PayloadOf<Tasks, Name>,
    options?: EnqueueOptions,
  ): Promise<EnqueuedJob>;
  /**
   * Enqueues many jobs in one statement (pgjobs.enqueue_many), each validated first; returns them in
   * the order given. A refused job throws a BatchJobError naming its index and task; nothing is
   * enqueued. An empty list returns [] without a query.
   */
  enqueueMany(
    db: AnyDb,
    jobs: readonly JobOf<Tasks>[],
    options?: { jobKeyMode?: "replace" | "preserve_run_at" },
  ): Promise<EnqueuedJob[]>;
  /** Runs a task now, in this process, without the queue (Celery's apply()); returns its result. */
  runInline<Name extends TaskNameOf<Tasks>>(
    db: AnyDb,
    task: Name,
    payload: PayloadOf<Tasks, Name>,
    options?: { logger?: Logger; signal?: AbortSignal },
  ): Promise<ResultOf<Tasks, Name>>;
  /** The parsed payload (defaults applied), or an InvalidPayloadError naming what is wrong. */
  validate<Name extends TaskNameOf<Tasks>>(task: Name, payload: unknown): PayloadOf<Tasks, Name>;
  /** Resolves when the job has finished (Celery's AsyncResult.get()). */
  waitForResult(pool: pg.Pool, jobId: string, options?: WaitOptions): Promise<JobOutcome>;
  retry(db: Kysely<Database>, jobId: string): Promise<RetryOutcome>;
  cancel(db: Kysely<Database>, jobId: string): Promise<void>;
  /** Lets SQL (pgjobs.enqueue, add_job) enqueue these tasks; `pgjobs migrate` and every worker start do it. */
  registerTasks(db: Kysely<Database>): Promise<void>;
  /** Runs these tasks (and the crontab) until stopped. */
  startWorker(settings: Omit<WorkerSettings, "tasks">): Promise<PgjobsWorker>;
}

export interface PgJobsOptions<Tasks extends TaskList> {
  /** The app's tasks, `as const` so their names and payloads type enqueue(). */
  tasks: Tasks;
}

export function createPgJobs<const Tasks extends TaskList>(options: PgJobsOptions<Tasks>): PgJobs<Tasks> {
  const registry = new TaskRegistry(options.tasks);
  return {
    tasks: options.tasks,
    registry,
    enqueue: (db, task, payload, enqueueOptions) => enqueueJob(db, registry, task, payload, enqueueOptions),
    enqueueMany: (db, jobs, batchOptions) => enqueueJobs(db, registry, jobs, batchOptions),
    runInline: async (db, task, payload, inlineOptions) =>
      (await runTaskInline(db, registry.get(task), payload, inlineOptions)) as never,
    validate: (task, payload) => validatePayload(registry.get(task), payload) as PayloadOf<Tasks, typeof task>,
    waitForResult,
    retry: (db, jobId) => retryJob(db, registry, jobId),
    cancel: cancelJob,
    registerTasks: async (db) => {
      await syncTaskRegistry(db, options.tasks);
    },
    startWorker: (settings) => startWorker({ ...settings, tasks: options.tasks }),
  };
}
