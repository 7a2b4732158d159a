/**
 * pgjobs attached to graphile-worker: the one wiring both ways of running a worker share.
 * `startWorker` (`pgjobs worker`) hands it to graphile-worker's run(); `makePgjobsPreset` puts it
 * in a preset for the plain `graphile-worker` CLI. It gives the engine the app's tasks as pgjobs
 * wraps them (validation, history, context, timeouts) and follows the worker's life through
 * graphile-worker's own extension points:
 *
 *   - postmigrate hook (every start, after graphile-worker's migrations): the database has
 *     pgjobs' schema, when asked to check; then the app's tasks go into the SQL enqueue allowlist;
 *   - `pool:create` event: the worker registers in pgjobs.workers as soon as its pool exists
 *     (before its first fetch returns), then heartbeats and reaps silent workers;
 *   - startWorker hook: no task body starts before that registration is in;
 *   - poolGracefulShutdown middleware: records `stopping`, bounds the drain (the jobs' signals
 *     abort when the drain time is up, jobs still running shortly after are failed for retry),
 *     and records `stopped` once graphile-worker has flushed its completions;
 *   - poolForcefulShutdown middleware: fails the running jobs itself, first, then lets the
 *     engine finish, then records the stop;
 *   - `gracefulShutdown` / `forcefulShutdown` events: graphile-worker's own signal handling (the
 *     CLI's) says which signal asked for the stop.
 */
import type {
  Job,
  ParsedCronItem,
  PromiseOrDirect,
  TaskList as EngineTaskList,
  WorkerEvents,
  WorkerPluginContext,
  WorkerPool,
} from "graphile-worker";
import { sql } from "kysely";
import type pg from "pg";
import { type Db, dbOverClient } from "../db/connection.ts";
import { syncTaskRegistry } from "../enqueue/sql-allowlist.ts";
import type { Logger } from "../logger.ts";
import { assertMigrated } from "../setup.ts";
import type { TaskList } from "../tasks/task-registry.ts";
import { PGJOBS_VERSION } from "../version.ts";
import { AttemptLedger } from "./attempt-ledger.ts";
import { Liveness } from "./liveness.ts";
import { buildTaskList, type RunnerDeps } from "./task-list.ts";

/** After a stop's drain time aborts the jobs' signals, how long they get to react before they are failed. */
const ABORT_GRACE_MS = 2000;
/** The longest a forced stop waits for the database, then for the engine, before going on without it. */
const FORCE_STOP_LIMIT_MS = 5000;
/** How long a worker that lost its database drains before giving up on it. */
export const DRAIN_ON_CONNECTION_LOSS_MS = 2000;
/**
 * How long jobs fetched into a busy worker's local queue wait for one of its slots before they
 * go back to the database for another worker (graphile-worker's default is 5 minutes: a job
 * could sit behind a long one while other workers idle).
 */
const LOCAL_QUEUE_TTL_MS = 1000;

/** graphile-worker's localQueue setting for `size` jobs per fetch; 1 (or less) turns it off. */
export function localQueueSetting(size: number): GraphileConfig.WorkerOptions["localQueue"] {
  return size > 1 ? { size, ttl: LOCAL_QUEUE_TTL_MS } : undefined;
}

/** How a worker ended. */
export type WorkerExit =
  | { kind: "stopped"; reason: string }
  | { kind: "forced"; reason: string; failedJobs: number }
  | { kind: "failed"; reason: string; error?: unknown };

/** What pgjobs writes through: history, liveness, and transactional tasks' own connections. */
export interface PgjobsDatabase {
  pool: pg.Pool;
  db: Db;
}

export interface PgjobsPluginOptions {
  tasks: TaskList;
  logger: Logger;
  /** After a graceful stop begins, running jobs get this long before their signal aborts. */
  shutdownTimeoutMs: number;
  /** A worker silent for longer than this is reaped by the others. */
  livenessTimeoutMs: number;
  /** Opens pgjobs' database; called once, when graphile-worker creates the worker pool. */
  database: (engine: { connectionString: string | undefined; concurrency: number }) => PgjobsDatabase;
  /** True on a direct connection (a client's processID is its backend's pid). */
  trustProcessId?: boolean;
  /** Refuse to start unless pgjobs' migrations (and the app's, in `appMigrationsDir`) are applied. */
  requireMigrated?: { appMigrationsDir?: string; advice: string };
  /** Runs once the worker has stopped and its stop is recorded, before `exited` settles. */
  afterStop?: (outcome: WorkerExit) => Promise<void>;
}

export interface PgjobsAttachment {
  /** The plugin, with the engine settings pgjobs needs (batch delays, abort timeout): extend it. */
  preset: GraphileConfig.Preset;
  /** graphile-worker's task list: the app's tasks, wrapped. */
  taskList: EngineTaskList;
  /** The worker's id (graphile-worker's pool id) once it is registered in pgjobs.workers. */
  ready: Promise<string>;
  /** Settles once the worker has stopped and pgjobs has recorded it, however it stopped. */
  exited: Promise<WorkerExit>;
  /**
   * Stops fetching, lets running jobs finish for `drainMs` (default: the shutdown timeout), then
   * aborts their signals; jobs still running a moment later are failed, to be retried.
   */
  stop(reason: string, options?: { drainMs?: number }): Promise<WorkerExit>;
  /** Fails the running jobs now (to be retried) and stops. */
  kill(reason: string): Promise<WorkerExit>;
}

export function attachPgjobs(options: PgjobsPluginOptions): PgjobsAttachment {
  const { logger, tasks } = options;
  let database: PgjobsDatabase | undefined;
  let ledger: AttemptLedger | undefined;
  let workerPool: WorkerPool | undefined;
  let liveness: Liveness | undefined;
  let registration: Promise<void> | undefined;
  // Who asked for the stop under way (pgjobs, or a signal through graphile-worker), and how.
  let stopRequest: { reason: string; drainMs?: number } | undefined;
  let forceRequest: { reason: string; as: "forced" | "failed" } | undefined;
  let forceBegan = false;
  let finishing: Promise<WorkerExit> | undefined;
  // Aborts the running jobs' signals when a stop's drain time is up (graphile-worker's own
  // abort comes after the full shutdown timeout; a stop on database loss drains for less).
  const drainOver = new AbortController();
  const running = new Set<string>();
  const ready = Promise.withResolvers<string>();
  ready.promise.catch(() => {}); // whoever awaits it hears the failure; nobody has to
  const exit = Promise.withResolvers<WorkerExit>();

  const opened = (): PgjobsDatabase => {
    if (!database) throw new Error("pgjobs: a task ran before graphile-worker created its worker pool");
    return database;
  };
  const deps: RunnerDeps = {
    get db() {
      return opened().db;
    },
    get pool() {
      return opened().pool;
    },
    get ledger() {
      return (ledger ??= new AttemptLedger(opened().db));
    },
    logger,
    mayHaveBeenReaped: () => liveness?.mayHaveBeenReaped() ?? false,
    trustProcessId: options.trustProcessId ?? false,
    stopSignal: drainOver.signal,
    running,
  };

  // Emitted inside run() (and the CLI's), before the pool's first fetch returns: register now,
  // so a worker that dies at once is already known to the reaper.
  function onPoolCreate({ workerPool: created, ctx }: { workerPool: WorkerPool; ctx: WorkerPluginContext }) {
    if (workerPool) {
      logger.error(`pgjobs follows one worker pool per preset; pool ${created.id} runs without liveness`);
      return;
    }
    workerPool = created;
    const engine = ctx.resolvedPreset.worker;
    const concurrency = engine.concurrentJobs ?? 1;
    database = options.database({ connectionString: engine.connectionString, concurrency });
    const alive = new Liveness(database.db, {
      workerId: created.id,
      concurrency,
      tasks: tasks.map((task) => task.name),
      livenessTimeoutMs: options.livenessTimeoutMs,
      logger,
      onReaped: (silentSeconds) => {
        logger.fatal(
          `this worker (${created.id}) was silent for ${Math.round(silentSeconds)} s, past the liveness bound, and ` +
            "was reaped: its jobs were given to other workers. Stopping; the supervisor should start a fresh one.",
        );
        void forceStop("reaped after a pause longer than the liveness bound", "failed");
      },
      onBeat: () => deps.ledger.refreshRunning(),
    });
    liveness = alive;
    registration = alive.register().then(() => {
      alive.start();
      ready.resolve(created.id);
    });
    registration.catch((error: unknown) => {
      ready.reject(error);
      logger.fatal({ err: error }, "could not register this worker in pgjobs.workers; stopping");
      void forceStop("could not register in pgjobs.workers", "failed");
    });
  }

  const listening = new WeakSet<WorkerEvents>();
  function listen(events: WorkerEvents) {
    if (listening.has(events)) return;
    listening.add(events);
    events.on("pool:create", onPoolCreate);
    // graphile-worker's own signal handling (the CLI's; pgjobs worker handles signals itself).
    events.on("gracefulShutdown", ({ signal }) => void (stopRequest ??= { reason: signal }));
    events.on("forcefulShutdown", ({ signal }) => void (forceRequest ??= { reason: `${signal} again`, as: "forced" }));
  }

  async function gracefulShutdown(
    next: () => PromiseOrDirect<void>,
    event: { workerPool: WorkerPool; message: string },
  ): Promise<void> {
    if (event.workerPool !== workerPool) return next();
    const requested = stopRequest;
    const reason = requested?.reason ?? event.message;
    const drainMs = requested?.drainMs ?? options.shutdownTimeoutMs;
    // Not awaited before the engine stops fetching: that should not wait for a round trip.
    const marked = liveness?.markStopping().catch(() => {});
    const abortAt = setTimeout(() => drainOver.abort(new Error(`${reason}: drain time over`)), drainMs);
    const forceAt = setTimeout(
      () => void forceStop(`${reason}: jobs still running ${drainMs + ABORT_GRACE_MS} ms after the stop began`),
      drainMs + ABORT_GRACE_MS,
    );
    let failure: { error: unknown } | undefined;
    try {
      // Stops fetching, hands prefetched jobs back, waits for running ones, flushes completions.
      await next();
    } catch (error) {
      failure = { error };
    } finally {
      clearTimeout(abortAt);
      clearTimeout(forceAt);
    }
    await marked;
    if (forceBegan) {
      // A forced stop overtook this one: it, not the drain, says how the worker ended.
      await exit.promise;
    } else if (!requested && !ranOnce(event.workerPool)) {
      await finish({ kind: "failed", reason: `graphile-worker stopped by itself: ${reason}`, error: failure?.error });
    } else {
      await finish(failure ? { kind: "failed", reason, error: failure.error } : { kind: "stopped", reason });
    }
    if (failure) throw failure.error;
  }

  async function forcefulShutdown(
    next: () => PromiseOrDirect<{ forceFailedJobs: readonly Job[] }>,
    event: { workerPool: WorkerPool; message: string },
  ): Promise<{ forceFailedJobs: readonly Job[] }> {
    if (event.workerPool !== workerPool) return next();
    forceBegan = true;
    const reason = forceRequest?.reason ?? stopRequest?.reason ?? event.message;
    const failedJobs = running.size;
    // Nobody asked to force: the engine escalated a stop by itself. graphile-worker 0.18 does so
    // at the end of a drain when its local queue held jobs at the stop (releasing it throws after
    // handing them back), so a requested stop that fails no job is still a clean one.
    const as = forceRequest?.as ?? (!stopRequest ? "failed" : failedJobs > 0 ? "forced" : "stopped");
    drainOver.abort(new Error(reason));
    // Fail the running jobs ourselves, at once: graphile-worker's forced shutdown first waits
    // for its own deactivation, and a process being killed may not live that long.
    if (database && running.size > 0) {
      await withinLimit(
        sql`select pgjobs.fail_running_jobs(${event.workerPool.id}, ${[...running]}::bigint[], ${reason})`
          .execute(database.db)
          .catch((error: unknown) => logger.warn({ err: error }, "could not fail the running jobs")),
        FORCE_STOP_LIMIT_MS,
      );
    }
    // graphile-worker's forced shutdown fails the jobs still running (they are retried later).
    const engine = Promise.resolve(next());
    await withinLimit(
      engine.catch(() => {}),
      FORCE_STOP_LIMIT_MS,
    );
    await finish(as === "forced" ? { kind: "forced", reason, failedJobs } : { kind: as, reason });
    return engine;
  }

  function finish(outcome: WorkerExit): Promise<WorkerExit> {
    finishing ??= (async () => {
      await liveness
        ?.stop(outcome.reason)
        .catch((error: unknown) =>
          logger.warn({ err: error }, "could not record this worker's stop in pgjobs.workers"),
        );
      await options.afterStop?.(outcome).catch((error: unknown) => logger.warn({ err: error }, "after the stop"));
      exit.resolve(outcome);
      return outcome;
    })();
    return finishing;
  }

  function forceStop(reason: string, as: "forced" | "failed" = "forced"): Promise<WorkerExit> {
    forceRequest ??= { reason, as };
    if (!workerPool)
      return finish(as === "forced" ? { kind: "forced", reason, failedJobs: 0 } : { kind: "failed", reason });
    if (!workerPool._forcefulShuttingDown) void Promise.resolve(workerPool.forcefulShutdown(reason)).catch(() => {});
    return exit.promise;
  }

  function stop(reason: string, stopOptions: { drainMs?: number } = {}): Promise<WorkerExit> {
    stopRequest ??= { reason, drainMs: stopOptions.drainMs };
    if (!workerPool) return finish({ kind: "stopped", reason });
    if (!workerPool._shuttingDown) void Promise.resolve(workerPool.gracefulShutdown(reason)).catch(() => {});
    return exit.promise;
  }

  const plugin: GraphileConfig.Plugin = {
    name: "PgjobsPlugin",
    version: PGJOBS_VERSION,
    description: "pgjobs: validated payloads, job history, liveness and bounded stops around graphile-worker",
    worker: {
      middleware: {
        init(next, event) {
          listen(event.ctx.events);
          return next();
        },
        poolGracefulShutdown: gracefulShutdown,
        poolForcefulShutdown: forcefulShutdown,
      },
      hooks: {
        async postmigrate(_ctx, event) {
          const db = dbOverClient(event.client);
          if (options.requireMigrated) {
            await assertMigrated(db, options.requireMigrated.appMigrationsDir, options.requireMigrated.advice);
          }
          // SQL enqueue (add_job, pgjobs.enqueue) accepts only registered names; a worker registers
          // what it runs, so its tasks are enqueueable from SQL for as long as it is deployed.
          await syncTaskRegistry(db, tasks);
        },
        async startWorker(_ctx, event) {
          if (event.worker.workerPool === workerPool) await registration?.catch(() => {});
        },
      },
    },
  };

  return {
    preset: {
      plugins: [plugin],
      worker: {
        gracefulShutdownAbortTimeout: options.shutdownTimeoutMs,
        // With -1 (the default), completions still in flight during a graceful shutdown are
        // lost and those jobs run again hours later; 0 batches without waiting and flushes
        // on shutdown.
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      },
    },
    taskList: buildTaskList(tasks, deps),
    ready: ready.promise,
    exited: exit.promise,
    stop,
    kill: (reason) => {
      stopRequest ??= { reason };
      return forceStop(reason);
    },
  };
}

/**
 * graphile-worker's run-once pools (`graphile-worker --once`) stop by themselves when the queue
 * is empty: that is their normal end, not a failure. They are the pools named `otpool-…`.
 */
function ranOnce(pool: WorkerPool): boolean {
  return pool.id.startsWith("otpool-");
}

/** Refuses a crontab that schedules a task the app does not have (it would fail every tick). */
export function assertCronTasksRegistered(items: readonly ParsedCronItem[], tasks: TaskList): void {
  for (const item of items) {
    if (!tasks.some((task) => task.name === item.task)) {
      throw new Error(
        `The crontab schedules task "${item.task}" (id ${item.identifier}), which is not registered. ` +
          "Add the task to the app's task list, or remove the line from the crontab.",
      );
    }
  }
}

/** One line saying how the worker ended, at the level it deserves. */
export function logExit(logger: Logger, outcome: WorkerExit): void {
  if (outcome.kind === "stopped") {
    logger.info(`worker stopped cleanly (${outcome.reason})`);
  } else if (outcome.kind === "forced") {
    logger.warn(
      `worker stopped by force (${outcome.reason}); ${outcome.failedJobs} running job(s) were failed and will be retried`,
    );
  } else {
    logger.fatal({ err: outcome.error }, `worker stopped: ${outcome.reason}`);
  }
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
