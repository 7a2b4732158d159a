/**
 * `pgjobs worker`: graphile-worker running the registry's tasks and the top-level crontab.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parseCrontab, run, type Runner } from "graphile-worker";
import type pg from "pg";
import type { Db } from "../db/connection.ts";
import type { Logger } from "../logger.ts";
import { toGraphileLogger } from "../logger.ts";
import type { TaskDefinition } from "../tasks/define-task.ts";
import { tasks } from "../tasks/index.ts";
import { buildTaskList } from "./task-list.ts";

export const CRONTAB_FILE = fileURLToPath(new URL("../../crontab", import.meta.url));

export interface WorkerSettings {
  pool: pg.Pool;
  db: Db;
  logger: Logger;
  concurrency: number;
  pollIntervalMs: number;
  /** After a graceful stop begins, running jobs get this long before their signal aborts. */
  shutdownTimeoutMs: number;
  /** Defaults to the registry; tests pass their own. */
  tasks?: readonly TaskDefinition[];
  /** Crontab text; defaults to the top-level `crontab` file. */
  crontab?: string;
}

export async function loadCrontab(file = CRONTAB_FILE): Promise<string> {
  return readFile(file, "utf8");
}

export async function startWorker(settings: WorkerSettings): Promise<Runner> {
  const taskDefinitions: readonly TaskDefinition[] = settings.tasks ?? tasks;
  const crontab = settings.crontab ?? (await loadCrontab());
  const parsedCronItems = parseCrontab(crontab);
  for (const item of parsedCronItems) {
    if (!taskDefinitions.some((task) => task.name === item.task)) {
      throw new Error(
        `The crontab schedules task "${item.task}" (id ${item.identifier}), which is not registered. ` +
          "Add the task to src/tasks/index.ts or remove the line from crontab.",
      );
    }
  }
  return run({
    pgPool: settings.pool,
    logger: toGraphileLogger(settings.logger),
    taskList: buildTaskList(taskDefinitions, settings.db, settings.logger),
    parsedCronItems,
    concurrency: settings.concurrency,
    pollInterval: settings.pollIntervalMs,
    // pgjobs owns signals: it drains, then stops the embedded server, then exits.
    noHandleSignals: true,
    preset: {
      worker: {
        gracefulShutdownAbortTimeout: settings.shutdownTimeoutMs,
        // With -1 (the default), completions still in flight during a graceful shutdown are
        // lost and those jobs run again hours later; 0 batches without waiting and flushes
        // on shutdown.
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      },
    },
  });
}
