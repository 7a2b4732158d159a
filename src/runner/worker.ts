/**
 * `pgjobs worker`: graphile-worker's run() with pgjobs attached (pgjobs-plugin.ts, the same
 * wiring the graphile-worker CLI preset uses): pgjobs tasks and the crontab, a local queue,
 * recorded attempts, liveness, and a stop that always ends: a graceful drain bounded by the
 * shutdown timeout, then a forced one that fails the jobs still running so they are retried.
 * pgjobs owns the signals here (the CLI's worker command turns them into stop and kill).
 */
import { EventEmitter } from "node:events";
import { parseCrontab, run, type WorkerEvents } from "graphile-worker";
import type pg from "pg";
import type { Db } from "../db/connection.ts";
import type { Logger } from "../logger.ts";
import { toGraphileLogger } from "../logger.ts";
import type { TaskList } from "../tasks/task-registry.ts";
import { assertCronTasksRegistered, attachPgjobs, localQueueSetting, type WorkerExit } from "./pgjobs-plugin.ts";

export type { WorkerExit } from "./pgjobs-plugin.ts";

export interface WorkerSettings {
  pool: pg.Pool;
  db: Db;
  logger: Logger;
  concurrency: number;
  pollIntervalMs: number;
  /** After a graceful stop begins, running jobs get this long before their signal aborts. */
  shutdownTimeoutMs: number;
  /** A worker silent for longer than this is reaped by the others. */
  livenessTimeoutMs: number;
  /** Jobs fetched (and locked) per trip to the database; 1 turns the local queue off. */
  localQueueSize: number;
  /** The app's tasks. */
  tasks: TaskList;
  /** Crontab text (graphile-worker's format); none by default. */
  crontab?: string;
  /** False behind a transaction-mode pooler, which cannot keep named prepared statements. */
  preparedStatements?: boolean;
  /** True on a direct connection (a client's processID is its backend's pid). */
  trustProcessId?: boolean;
  /** Compare run_at and fire the crontab by this process's clock, not the database's (tests: a TestClock). */
  useNodeTime?: boolean;
}

export interface PgjobsWorker {
  /** This worker's id in pgjobs.workers: graphile-worker's pool id, its jobs' locked_by. */
  id: string;
  /** Settles once the worker has stopped, however it stopped. */
  exited: Promise<WorkerExit>;
  /** graphile-worker's events (job:start, job:success, job:error, …). */
  events: WorkerEvents;
  /**
   * Stops fetching, lets running jobs finish for `drainMs` (default: the shutdown timeout), then
   * aborts their signals; jobs still running a moment later are failed, to be retried.
   */
  stop(reason: string, options?: { drainMs?: number }): Promise<WorkerExit>;
  /** Fails the running jobs now (to be retried) and stops. */
  kill(reason: string): Promise<WorkerExit>;
}

export async function startWorker(settings: WorkerSettings): Promise<PgjobsWorker> {
  const parsedCronItems = parseCrontab(settings.crontab ?? "");
  assertCronTasksRegistered(parsedCronItems, settings.tasks);
  const pgjobs = attachPgjobs({
    tasks: settings.tasks,
    logger: settings.logger,
    shutdownTimeoutMs: settings.shutdownTimeoutMs,
    livenessTimeoutMs: settings.livenessTimeoutMs,
    trustProcessId: settings.trustProcessId ?? false,
    // graphile-worker shares the caller's pool: one pool for the engine, history and tasks.
    database: () => ({ pool: settings.pool, db: settings.db }),
  });
  const events: WorkerEvents = new EventEmitter();
  const runner = await run({
    pgPool: settings.pool,
    logger: toGraphileLogger(settings.logger),
    events,
    taskList: pgjobs.taskList,
    parsedCronItems,
    concurrency: settings.concurrency,
    pollInterval: settings.pollIntervalMs,
    // pgjobs owns signals: it drains, then stops the embedded server, then exits.
    noHandleSignals: true,
    preset: {
      extends: [pgjobs.preset],
      worker: {
        localQueue: localQueueSetting(settings.localQueueSize),
        preparedStatements: settings.preparedStatements ?? true,
        useNodeTime: settings.useNodeTime ?? false,
      },
    },
  });
  const id = await pgjobs.ready.catch(async (error: unknown) => {
    await pgjobs.exited;
    throw error;
  });
  return {
    id,
    exited: pgjobs.exited,
    events,
    stop(reason, options) {
      const stopped = pgjobs.stop(reason, options);
      // The pool is stopping; this also stops the crontab and releases the runner.
      runner.stop(reason).catch(() => {});
      return stopped;
    },
    kill: (reason) => pgjobs.kill(reason),
  };
}
