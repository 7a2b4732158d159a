import { detectConnectionKind, transactionPoolerRefusal } from "../../db/pooler.ts";
import { DRAIN_ON_CONNECTION_LOSS_MS, logExit } from "../../runner/pgjobs-plugin.ts";
import { type PgjobsWorker, startWorker } from "../../runner/worker.ts";
import { migrate } from "../../db/migrate.ts";
import { assertMigrated } from "../../setup.ts";
import { type CliContext, openDatabase } from "../context.ts";
import { EXIT } from "../exit-codes.ts";

/** After a second signal, the process is gone within this long, whatever its jobs are doing. */
const HARD_EXIT_AFTER_MS = 2500;

/**
 * Migrates, runs the worker until SIGINT/SIGTERM, then drains: running jobs get
 * PGJOBS_SHUTDOWN_TIMEOUT_MS to finish, completions are flushed, the embedded server (if any)
 * stops last. A second signal fails the running jobs (they are retried) and exits at once.
 * Exit codes: 0 stopped on request; 1 stopped by a failure (database lost, the engine stopped,
 * this worker was reaped); 3 stopped by force, its running jobs failed for retry.
 */
export async function workerCommand(cli: CliContext): Promise<number> {
  const { config, logger, project } = cli;
  const { tasks } = project;
  if (tasks.length === 0) {
    logger.fatal(
      project.configFile
        ? `${project.configFile} lists no tasks: there is nothing for a worker to run.`
        : `No pgjobs.config.ts in ${process.cwd()} or any folder above it: a worker needs the app's tasks. ` +
            "Create one (see the README), or run the worker from the app's folder.",
    );
    return EXIT.FAILURE;
  }
  let connectionLost: Error | undefined;
  let worker: PgjobsWorker | undefined;
  const session = await openDatabase(cli, {
    // Each running job may hold a transaction; the engine, the heartbeat and a deadline's
    // pg_terminate_backend need a few more.
    poolSize: config.concurrency + 4,
    applicationName: "pgjobs worker",
    narrate: true,
    onConnectionLost: (error) => {
      if (connectionLost) return; // every pooled connection reports the same loss
      connectionLost = error;
      logger.fatal(
        { err: error },
        "lost the connection to PostgreSQL; stopping so the supervisor can restart the worker " +
          "(jobs it held come back to the queue within the liveness bound once the database is back)",
      );
      void worker?.stop("database connection lost", { drainMs: DRAIN_ON_CONNECTION_LOSS_MS });
    },
  });
  let signalsReceived = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (!worker) {
      // Still starting: nothing runs yet. Stop what started (an embedded server) and go.
      logger.info(`${signal} while starting: stopping`);
      void session.close().finally(() => process.exit(EXIT.OK));
    } else if (signalsReceived++ === 0) {
      logger.info(
        `${signal}: stopping; no new jobs, running jobs have ${config.shutdownTimeoutMs} ms to finish. ` +
          "Send the signal again to fail them now (they will be retried).",
      );
      void worker.stop(signal);
    } else {
      logger.warn(`${signal} again: failing the running jobs (they will be retried) and exiting`);
      setTimeout(() => process.exit(EXIT.FORCED), HARD_EXIT_AFTER_MS).unref();
      void worker.kill(`${signal} twice`);
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const connection = await detectConnectionKind(session.pool, session.url);
    if (connection.kind === "transaction-pooler" && !config.transactionPooler) {
      logger.fatal(transactionPoolerRefusal(connection));
      return EXIT.FAILURE;
    }
    if (config.transactionPooler) {
      // Advisory locks do not survive a transaction pooler: migrations need a direct connection.
      await assertMigrated(session.db, project.migrationsDir);
    } else {
      await migrate(session.pool, logger, {
        appMigrationsDir: project.migrationsDir,
        lockTimeoutMs: config.migrationLockTimeoutMs,
      });
    }
    worker = await startWorker({
      pool: session.pool,
      db: session.db,
      logger,
      concurrency: config.concurrency,
      pollIntervalMs: config.pollIntervalMs,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      livenessTimeoutMs: config.livenessTimeoutMs,
      localQueueSize: config.localQueueSize,
      preparedStatements: !config.transactionPooler,
      trustProcessId: connection.kind === "direct",
      tasks,
      crontab: project.crontab,
    });
    logger.info(
      {
        workerId: worker.id,
        concurrency: config.concurrency,
        localQueueSize: config.localQueueSize,
        tasks: tasks.map((task) => task.name),
        app: project.configFile,
        connection: connection.kind,
        embeddedDatabase: session.embedded,
      },
      `worker ready (${worker.id}): running ${tasks.length} task type(s) with concurrency ${config.concurrency}`,
    );
    const outcome = await worker.exited;
    logExit(logger, outcome);
    if (connectionLost) return EXIT.FAILURE;
    return outcome.kind === "stopped" ? EXIT.OK : outcome.kind === "forced" ? EXIT.FORCED : EXIT.FAILURE;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await session.close();
  }
}
