import type { Config } from "../../config.ts";
import type { Logger } from "../../logger.ts";
import { startWorker } from "../../runner/worker.ts";
import { prepareDatabase } from "../../setup.ts";
import { taskNames } from "../../tasks/index.ts";
import { openDatabase } from "../context.ts";

/**
 * Migrates, runs the worker until SIGINT/SIGTERM, then drains: running jobs get
 * PGJOBS_SHUTDOWN_TIMEOUT_MS to finish, completions are flushed, the embedded server (if any)
 * stops last. Exits non-zero if the database goes away, so a supervisor restarts it.
 */
export async function workerCommand(config: Config, logger: Logger): Promise<number> {
  let connectionLost: Error | undefined;
  let stopWorker: ((reason: string) => void) | undefined;
  const session = await openDatabase(config, logger, {
    // Each running job may hold a transaction; graphile-worker needs a few more for itself.
    poolSize: config.concurrency + 4,
    applicationName: "pgjobs worker",
    onConnectionLost: (error) => {
      if (connectionLost) return; // every pooled connection reports the same loss
      connectionLost = error;
      logger.fatal(
        { err: error },
        "lost the connection to PostgreSQL; stopping so the supervisor can restart the worker",
      );
      stopWorker?.("database connection lost");
    },
  });
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM"];
  try {
    await prepareDatabase(session.pool, session.db, logger);
    const runner = await startWorker({
      pool: session.pool,
      db: session.db,
      logger,
      concurrency: config.concurrency,
      pollIntervalMs: config.pollIntervalMs,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
    });
    let stopping = false;
    stopWorker = (reason) => {
      if (stopping) return;
      stopping = true;
      logger.info(
        `stopping (${reason}): no new jobs; running jobs have ${config.shutdownTimeoutMs} ms to finish. Send the signal again to force.`,
      );
      void runner.stop(reason).catch((error: unknown) => logger.error({ err: error }, "graceful stop failed"));
    };
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn(`${signal} again: killing running jobs now`);
        void runner.kill(`${signal} twice`);
        return;
      }
      stopWorker?.(signal);
    };
    for (const signal of signals) process.on(signal, onSignal);
    logger.info(
      { concurrency: config.concurrency, tasks: taskNames(), embeddedDatabase: session.embedded },
      `worker ready: running ${taskNames().length} task type(s) with concurrency ${config.concurrency}`,
    );
    try {
      await runner.promise;
    } catch (error) {
      logger.fatal({ err: error }, "the worker stopped on an error");
      return 1;
    }
    if (connectionLost) return 1;
    logger.info("worker stopped cleanly");
    return 0;
  } finally {
    for (const signal of signals) process.removeAllListeners(signal);
    await session.close();
  }
}
