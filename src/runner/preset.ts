/**
 * `makePgjobsPreset({ tasks })`: pgjobs under the plain `graphile-worker` CLI, configured the
 * graphile-worker way (`graphile.config.ts`). The CLI then runs the app's pgjobs tasks as
 * `pgjobs worker` does, through the same plugin (pgjobs-plugin.ts): payloads validated, every
 * attempt in pgjobs.job_runs, the running set reported, heartbeats and reaping in
 * pgjobs.workers, the SQL task registry written, payloads kept out of the log above debug, a
 * bounded drain whose completions are flushed before the stop is recorded. graphile-worker keeps
 * what is its own: the command line, the connection, the crontab file, and the signals.
 *
 * Settings graphile-worker has an option for are set the graphile-worker way (graphile.config.ts,
 * its flags); this preset only gives pgjobs' defaults for them. The rest come from the options
 * here, else from the environment `pgjobs worker` reads (PGJOBS_SHUTDOWN_TIMEOUT_MS,
 * PGJOBS_LIVENESS_TIMEOUT_MS, LOG_LEVEL, LOG_FORMAT).
 *
 * @example
 * // graphile.config.ts (run `pgjobs migrate` first, then `graphile-worker`)
 * import { makePgjobsPreset } from "pgjobs";
 * import { tasks } from "./src/jobs/tasks.ts";
 *
 * const preset: GraphileConfig.Preset = {
 *   extends: [makePgjobsPreset({ tasks, migrations: `${import.meta.dirname}/migrations` })],
 *   worker: { connectionString: process.env.DATABASE_URL, concurrentJobs: 5 },
 * };
 * export default preset;
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseCrontab, type TaskList as EngineTaskList } from "graphile-worker";
import {
  type Config,
  DEFAULT_CONCURRENCY,
  DEFAULT_POLL_INTERVAL_MS,
  defaultLocalQueueSize,
  loadConfig,
} from "../config.ts";
import { createDb, createPool } from "../db/connection.ts";
import { createLogger, type Logger, toGraphileLogger } from "../logger.ts";
import type { TaskList } from "../tasks/task-registry.ts";
import { PGJOBS_VERSION } from "../version.ts";
import {
  assertCronTasksRegistered,
  attachPgjobs,
  DRAIN_ON_CONNECTION_LOSS_MS,
  localQueueSetting,
  logExit,
} from "./pgjobs-plugin.ts";

export interface PgjobsPresetOptions {
  /** The app's tasks. */
  tasks: TaskList;
  /**
   * The app's migrations folder (absolute, or relative to the working directory). The worker
   * refuses to start until `pgjobs migrate` has applied them, as it does for pgjobs' own schema.
   */
  migrations?: string;
  /** @defaultValue pino at LOG_LEVEL in LOG_FORMAT, as `pgjobs worker` logs */
  logger?: Logger;
  /**
   * After a graceful stop begins, running jobs get this long before their signal aborts; jobs
   * still running 2 s later are failed, to be retried.
   * @defaultValue PGJOBS_SHUTDOWN_TIMEOUT_MS, else `10_000`
   */
  shutdownTimeoutMs?: number;
  /**
   * A worker silent for longer than this is reaped by the others.
   * @defaultValue PGJOBS_LIVENESS_TIMEOUT_MS, else `30_000`
   */
  livenessTimeoutMs?: number;
}

/**
 * The module graphile-worker loads as its `taskDirectory` under this preset: .ts beside this file
 * in a checkout, .js in the built package.
 */
const TASK_FILE = fileURLToPath(
  new URL(`./graphile-task-directory${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url),
);

let startingTaskList: EngineTaskList | undefined;

/** The tasks of the preset graphile-worker is starting with (for graphile-task-directory.ts). */
export function presetTaskList(): EngineTaskList {
  if (!startingTaskList) {
    throw new Error(
      "pgjobs' task file is graphile-worker's taskDirectory only under a preset made by makePgjobsPreset " +
        "(graphile.config.ts: `extends: [makePgjobsPreset({ tasks })]`); no such preset has started in this process.",
    );
  }
  return startingTaskList;
}

export function makePgjobsPreset(options: PgjobsPresetOptions): GraphileConfig.Preset {
  let environment: Config | undefined;
  const env = () => (environment ??= loadConfig());
  const logger = options.logger ?? createLogger(env());
  const appMigrationsDir = options.migrations === undefined ? undefined : path.resolve(options.migrations);
  let connectionLost = false;
  let closeDatabase = (): Promise<void> => Promise.resolve();

  const pgjobs = attachPgjobs({
    tasks: options.tasks,
    logger,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? env().shutdownTimeoutMs,
    livenessTimeoutMs: options.livenessTimeoutMs ?? env().livenessTimeoutMs,
    requireMigrated: {
      appMigrationsDir,
      advice:
        "Under the graphile-worker CLI pgjobs does not migrate: run `pgjobs migrate` with the same DATABASE_URL " +
        "(it applies pgjobs' schema and the app's migrations), then start graphile-worker again.",
    },
    // A pool of pgjobs' own beside graphile-worker's (whose size is its maxPoolSize): the CLI
    // does not share its pool with plugins.
    database: ({ connectionString, concurrency }) => {
      const pool = createPool(connectionString, {
        // Each running transactional task holds a connection; history and heartbeats need a couple.
        max: concurrency + 2,
        applicationName: "pgjobs (graphile-worker CLI)",
        onIdleError: (error) => {
          if (connectionLost) return; // every pooled connection reports the same loss
          connectionLost = true;
          logger.fatal(
            { err: error },
            "lost the connection to PostgreSQL; stopping so the supervisor can restart the worker " +
              "(jobs it held come back to the queue within the liveness bound once the database is back)",
          );
          void pgjobs.stop("database connection lost", { drainMs: DRAIN_ON_CONNECTION_LOSS_MS });
        },
      });
      closeDatabase = () => pool.end();
      return { pool, db: createDb(pool) };
    },
    afterStop: (outcome) => {
      logExit(logger, outcome);
      // Not awaited: a task stuck in a query keeps its connection, and graphile-worker ends the
      // process (by its signal) as soon as the stop is over; the pool closes as clients return.
      void closeDatabase().catch(() => {});
      // graphile-worker's CLI exits 0 when its pool stops by itself, and 1 only when it throws:
      // a supervisor must hear that this worker stopped on a failure, to start a fresh one.
      if (outcome.kind === "failed" || connectionLost) process.exitCode = 1;
      return Promise.resolve();
    },
  });
  pgjobs.ready.then(
    (workerId) =>
      logger.info(
        { workerId, tasks: options.tasks.map((task) => task.name) },
        `worker ready (${workerId}) under the graphile-worker CLI: running ${options.tasks.length} task type(s)`,
      ),
    () => {}, // said where it failed
  );

  const stopListeners = new WeakSet<object>();
  const cliPlugin: GraphileConfig.Plugin = {
    name: "PgjobsCliPlugin",
    version: PGJOBS_VERSION,
    description: "pgjobs' tasks and defaults for the graphile-worker CLI",
    worker: {
      middleware: {
        init(next, event) {
          const worker = event.ctx.resolvedPreset.worker;
          if (path.resolve(worker.taskDirectory ?? "") !== TASK_FILE) {
            throw new Error(
              `graphile-worker's taskDirectory is set to ${worker.taskDirectory}, but under makePgjobsPreset the ` +
                "tasks come from its `tasks` list. Remove worker.taskDirectory from graphile.config.ts and add those " +
                "tasks to the app's list (defineTask).",
            );
          }
          // pgjobs' default: fetch as many jobs per trip as there are slots, hand back after 1 s.
          worker.localQueue ??= localQueueSetting(defaultLocalQueueSize(worker.concurrentJobs ?? DEFAULT_CONCURRENCY));
          startingTaskList = pgjobs.taskList;
          // In a process of the app's own (graphile-worker's run() with this preset), stopping the
          // runner is a request, not a failure.
          if (!stopListeners.has(event.ctx.events)) {
            stopListeners.add(event.ctx.events);
            event.ctx.events.on("stop", () => void pgjobs.stop("graphile-worker's runner was stopped"));
          }
          return next();
        },
      },
      hooks: {
        // The crontab is graphile-worker's (crontabFile, --crontab); a line naming a task the app
        // does not have would fail at every tick, so it stops the start instead.
        async postmigrate(ctx) {
          const { crontabFile } = ctx.resolvedPreset.worker;
          if (!crontabFile) return;
          const text = await readFile(crontabFile, "utf8").catch((error: NodeJS.ErrnoException) => {
            if (error.code === "ENOENT") return ""; // graphile-worker runs without one, too
            throw error;
          });
          assertCronTasksRegistered(parseCrontab(text), options.tasks);
        },
      },
    },
  };

  return {
    extends: [pgjobs.preset],
    plugins: [cliPlugin],
    worker: {
      taskDirectory: TASK_FILE,
      // pgjobs' log policy: one pino stream; graphile-worker's per-job lines (which carry the
      // payload) only at debug.
      logger: toGraphileLogger(logger),
      concurrentJobs: DEFAULT_CONCURRENCY,
      pollInterval: DEFAULT_POLL_INTERVAL_MS,
    },
  };
}
