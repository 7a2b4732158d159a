/** Starts a real worker against a test database and stops it after the file. */
import { afterAll } from "vitest";
import { createLogger } from "../../src/logger.ts";
import { type PgjobsWorker, startWorker, type WorkerSettings } from "../../src/runner/worker.ts";
import { appTasks } from "./app.ts";
import type { TestDatabase } from "./database.ts";

export const quietLogger = createLogger({ logLevel: "silent", logFormat: "json" });

export function useWorkers() {
  const running: PgjobsWorker[] = [];
  afterAll(async () => {
    await Promise.all(running.map((worker) => worker.stop("test file done")));
  });
  return async (
    database: TestDatabase,
    settings: Partial<Omit<WorkerSettings, "pool" | "db">> = {},
  ): Promise<PgjobsWorker> => {
    const worker = await startWorker({
      pool: database.pool,
      db: database.db,
      logger: quietLogger,
      concurrency: 2,
      pollIntervalMs: 100,
      shutdownTimeoutMs: 5000,
      livenessTimeoutMs: 30_000,
      localQueueSize: 4,
      crontab: "",
      tasks: appTasks,
      ...settings,
    });
    running.push(worker);
    return worker;
  };
}
