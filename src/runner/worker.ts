/**
 * `pgjobs worker`: graphile-worker running pgjobs tasks and the crontab, with a local queue,
 * recorded attempts, liveness, and a stop that always ends: a graceful drain bounded by the
 * shutdown timeout, then a forced one that fails the jobs still running so they are retried.
 */
import { EventEmitter } from "node:events";
import { parseCrontab, run, type Runner, type WorkerEvents, type WorkerPool } from "graphile-worker";
import { sql } from "kysely";
import type pg from "pg";
import type { Db } from "../db/connection.ts";
import type { Logger } from "../logger.ts";
import { toGraphileLogger } from "../logger.ts";
import type { TaskList } from "../tasks/task-registry.ts";
import { syncTaskRegistry } from "../enqueue/sql-allowlist.ts";
import { AttemptLedger } from "./attempt-ledger.ts";
import { Liveness } from "./liveness.ts";
import { buildTaskList } from "./task-list.ts";

/** After the shutdown timeout aborts the jobs' signals, how long they get to react before they are failed. */
const ABORT_GRACE_MS = 2000;
/**
 * How long jobs fetched into a busy worker's local queue wait for one of its slots before they
 * go back to the database for another worker (graphile-worker's default is 5 minutes: a job
 * could sit behind a long one while other workers idle).
 */
const LOCAL_QUEUE_TTL_MS = 1000;
/** The longest a forced stop waits for the database before giving up on it. */
const FORCE_STOP_LIMIT_MS = 5000;

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

/** How a worker ended. */
export type WorkerExit =
  | { kind: "stopped"; reason: string }
  | { kind: "forced"; reason: string; failedJobs: number }
  | { kind: "failed"; reason: string; error?: unknown };

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
  const { logger } = settings;
  const taskDefinitions = settings.tasks;
  const parsedCronItems = parseCrontab(settings.crontab ?? "");
  for (const item of parsedCronItems) {
    if (!taskDefinitions.some((task) => task.name === item.task)) {
      throw new Error(
        `The crontab schedules task "${item.task}" (id ${item.identifier}), which is not registered. ` +
          "Add the task to the app's task list, or remove the line from the crontab.",
      );
    }
  }

  const events: WorkerEvents = new EventEmitter();
  const ledger = new AttemptLedger(settings.db);
  let workerPool: WorkerPool | undefined;
  let liveness: Liveness | undefined;
  let registered: Promise<void> | undefined;
  // Emitted inside run(), before the pool's first fetch is sent: register now, so a worker
  // that dies at once is already known to the reaper.
  events.once("pool:create", ({ workerPool: created }: { workerPool: WorkerPool }) => {
    workerPool = created;
    liveness = new Liveness(settings.db, {
      workerId: created.id,
      concurrency: settings.concurrency,
      tasks: taskDefinitions.map((task) => task.name),
      livenessTimeoutMs: settings.livenessTimeoutMs,
      logger,
      onReaped: (silentSeconds) => {
        logger.fatal(
          `this worker (${created.id}) was silent for ${Math.round(silentSeconds)} s, past the liveness bound, and ` +
            "was reaped: its jobs were given to other workers. Stopping; the supervisor should start a fresh one.",
        );
        stopping ??= forceStop("reaped after a pause longer than the liveness bound", "failed");
      },
      onBeat: () => ledger.refreshRunning(),
    });
    registered = liveness.register();
  });

  // Aborts the running jobs' signals when a stop's drain time is up (graphile-worker's own
  // abort comes after the full shutdown timeout; a stop on database loss drains for less).
  const drainOver = new AbortController();
  const running = new Set<string>();
  // SQL enqueue (add_job, pgjobs.enqueue) accepts only registered names; a worker registers what
  // it runs, so its tasks are enqueueable from SQL for as long as it is deployed.
  await syncTaskRegistry(settings.db, taskDefinitions);
  const runner: Runner = await run({
    pgPool: settings.pool,
    logger: toGraphileLogger(logger),
    events,
    taskList: buildTaskList(taskDefinitions, {
      db: settings.db,
      pool: settings.pool,
      logger,
      ledger,
      mayHaveBeenReaped: () => liveness?.mayHaveBeenReaped() ?? false,
      trustProcessId: settings.trustProcessId ?? false,
      stopSignal: drainOver.signal,
      running,
    }),
    parsedCronItems,
    concurrency: settings.concurrency,
    pollInterval: settings.pollIntervalMs,
    // pgjobs owns signals: it drains, then stops the embedded server, then exits.
    noHandleSignals: true,
    preset: {
      worker: {
        gracefulShutdownAbortTimeout: settings.shutdownTimeoutMs,
        localQueue:
          settings.localQueueSize > 1 ? { size: settings.localQueueSize, ttl: LOCAL_QUEUE_TTL_MS } : undefined,
        // With -1 (the default), completions still in flight during a graceful shutdown are
        // lost and those jobs run again hours later; 0 batches without waiting and flushes
        // on shutdown.
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
        preparedStatements: settings.preparedStatements ?? true,
        useNodeTime: settings.useNodeTime ?? false,
      },
    },
  });
  if (!workerPool || !liveness || !registered) throw new Error("graphile-worker started no worker pool");
  const pool = workerPool;
  const alive = liveness;
  await registered;
  alive.start();

  let stopping: Promise<WorkerExit> | undefined;
  let exit: (outcome: WorkerExit) => void = () => {};
  const exited = new Promise<WorkerExit>((resolve) => (exit = resolve));
  // The engine stopping by itself (an error, or a pool with no workers left) is a failure.
  runner.promise.then(
    () => void (stopping ?? finish({ kind: "failed", reason: "graphile-worker stopped by itself" })),
    (error: unknown) =>
      void (stopping ?? finish({ kind: "failed", reason: "graphile-worker stopped on an error", error })),
  );

  async function finish(outcome: WorkerExit): Promise<WorkerExit> {
    await alive
      .stop(outcome.reason)
      .catch((error: unknown) => logger.warn({ err: error }, "could not record this worker's stop in pgjobs.workers"));
    exit(outcome);
    return outcome;
  }

  /** Fails the running jobs (to be retried) and stops; `as: "failed"` when no one asked for it. */
  /** Set once a forced stop begins: it, not a graceful stop racing it, says how the worker ended. */
  let forcing: Promise<WorkerExit> | undefined;

  function forceStop(reason: string, as: "forced" | "failed" = "forced"): Promise<WorkerExit> {
    forcing ??= failAndStop(reason, as);
    return forcing;
  }

  async function failAndStop(reason: string, as: "forced" | "failed"): Promise<WorkerExit> {
    const failedJobs = running.size;
    drainOver.abort(new Error(reason));
    // Fail the running jobs ourselves, at once: graphile-worker's forced shutdown first waits
    // for its own deactivation, and a process being killed may not live that long.
    await withinLimit(
      sql`select pgjobs.fail_running_jobs(${pool.id}, ${[...running]}::bigint[], ${reason})`
        .execute(settings.db)
        .catch((error: unknown) => logger.warn({ err: error }, "could not fail the running jobs")),
      FORCE_STOP_LIMIT_MS,
    );
    // graphile-worker's forced shutdown fails the jobs still running (they are retried later).
    const forced = pool._forcefulShuttingDown ? undefined : pool.forcefulShutdown(reason);
    await withinLimit(
      Promise.resolve(forced).catch(() => {}),
      FORCE_STOP_LIMIT_MS,
    );
    return finish(as === "forced" ? { kind: "forced", reason, failedJobs } : { kind: "failed", reason });
  }

  function stop(reason: string, options: { drainMs?: number } = {}): Promise<WorkerExit> {
    stopping ??= (async () => {
      const drainMs = options.drainMs ?? settings.shutdownTimeoutMs;
      await alive.markStopping().catch(() => {});
      const graceful = runner.stop(reason).then(
        () => true,
        () => false,
      );
      const abort = setTimeout(() => drainOver.abort(new Error(`${reason}: drain time over`)), drainMs);
      const drained = await withinLimit(graceful, drainMs + ABORT_GRACE_MS);
      clearTimeout(abort);
      if (forcing) return forcing;
      if (drained === true) return finish({ kind: "stopped", reason });
      return forceStop(`${reason}: jobs still running ${drainMs + ABORT_GRACE_MS} ms after the stop began`);
    })();
    return stopping;
  }

  function kill(reason: string): Promise<WorkerExit> {
    stopping ??= forceStop(reason);
    return forceStop(reason);
  }

  return { id: pool.id, exited, events, stop, kill };
}

/** `work`'s value, or undefined once `ms` have passed. */
async function withinLimit<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([work, limit]);
  } finally {
    clearTimeout(timer);
  }
}
