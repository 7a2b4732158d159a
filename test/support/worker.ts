/** Starts a real worker against a test database and stops it after the file. */
import type { Runner } from "graphile-worker";
import { afterAll } from "vitest";
import { createLogger } from "../../src/logger.ts";
import { startWorker, type WorkerSettings } from "../../src/runner/worker.ts";
import type { TestDatabase } from "./database.ts";

export const quietLogger = createLogger({ logLevel: "silent", logFormat: "json" });

export function useWorkers() {
  const running: Runner[] = [];
  afterAll(async () => {
    await Promise.all(running.map((runner) => runner.stop()));
  });
  return async (
    database: TestDatabase,
    settings: Partial<Omit<WorkerSettings, "pool" | "db">> = {},
  ): Promise<Runner> => {
    const runner = await startWorker({
      pool: database.pool,
      db: database.db,
      logger: quietLogger,
      concurrency: 2,
      pollIntervalMs: 100,
      shutdownTimeoutMs: 5000,
      crontab: "",
      ...settings,
    });
    running.push(runner);
    return runner;
  };
}
