/**
 * Are holds expired on time while the queue is busy? A real worker (the project's startWorker,
 * default concurrency and poll interval) drains a backlog of unrelated no-op jobs; meanwhile 100
 * holds fall due over the next minute. Lateness = resolved_at − expires_at, from the database.
 * With design "job per hold", the holds get 0003's own jobs (priority 0) instead of the timer.
 */
import { sql } from "kysely";
import { z } from "zod";
import type { Config } from "../../src/config.ts";
import type { Logger } from "../../src/logger.ts";
import { startWorker } from "../../src/runner/worker.ts";
import { defineTask } from "../../src/tasks/define-task.ts";
import { tasks as registeredTasks } from "../../src/app/tasks/index.ts";
import { createPlaceVariants, FUNCTION } from "./place-hold.ts";
import { createMigrated, drop, vacuumAnalyze } from "./setup.ts";
import { note, percentile } from "./stats.ts";

const noopTask = defineTask({
  name: "bench__noop",
  payload: z.object({}),
  options: { transactional: false },
  run: () => Promise.resolve(null),
});

export interface Punctuality {
  design: "expiry timer" | "job per hold (0003)";
  holds: number;
  expired: number;
  lateness: number[]; // seconds, one per expired hold
  backlogAtStart: number;
  /** Backlog jobs still queued when the last hold fell due: above 0 means the queue was busy throughout. */
  backlogWhenLastDue: number;
  timedOut: boolean;
}

export async function measurePunctuality(
  serverUrl: string,
  config: Config,
  logger: Logger,
  options: { design: Punctuality["design"]; backlog: number; holds: number; windowMs: number; giveUpMs: number },
): Promise<Punctuality> {
  const tasks = [...registeredTasks, noopTask];
  const scratch = await createMigrated(serverUrl, "timer", logger, tasks);
  const { db } = scratch;
  try {
    await createPlaceVariants(scratch);
    await sql`
      select count(*) from graphile_worker.add_jobs(array(
        select row('bench__noop', '{}'::json, null, null, null, null, null, null)::graphile_worker.job_spec
          from generate_series(1, ${options.backlog}::int)))`.execute(db);
    await vacuumAnalyze(db);
    const backlog = async () => {
      const { rows } = await sql<{ n: string }>`
        select count(*) as n from graphile_worker.jobs where task_identifier = 'bench__noop'`.execute(db);
      return Number(rows[0]?.n);
    };
    const runner = await startWorker({
      pool: scratch.pool,
      db,
      logger,
      concurrency: config.concurrency,
      pollIntervalMs: config.pollIntervalMs,
      shutdownTimeoutMs: 5000,
      livenessTimeoutMs: config.livenessTimeoutMs,
      localQueueSize: config.localQueueSize,
      tasks,
      crontab: "", // no sweep: expiry is the timer's (or the per-hold jobs') alone
    });
    try {
      while ((await backlog()) > options.backlog - 200) await new Promise((resolve) => setTimeout(resolve, 100));
      const backlogAtStart = await backlog();
      const fn = FUNCTION[options.design === "expiry timer" ? "expiry timer (place_hold)" : "job per hold (0003)"];
      const lead = 5000;
      const step = (options.windowMs - lead) / options.holds;
      await sql`
        select ${sql.raw(fn)}('acct-' || (i % 100), 1,
                              now() + (${lead}::float8 + i * ${step}::float8) * interval '1 millisecond', 'due-' || i)
          from generate_series(0, ${options.holds - 1}::int) i`.execute(db);
      note(
        `${options.design}: ${options.holds} holds due over ${options.windowMs / 1000} s, backlog ${backlogAtStart}`,
      );
      let backlogWhenLastDue = -1;
      const deadline = Date.now() + options.windowMs + options.giveUpMs;
      let active = options.holds;
      while (active > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        const { rows } = await sql<{ active: string; all_due: boolean }>`
          select count(*) filter (where state = 'active') as active, bool_and(expires_at <= now()) as all_due
            from credits.holds where idempotency_key like 'due-%'`.execute(db);
        active = Number(rows[0]?.active);
        if (backlogWhenLastDue < 0 && rows[0]?.all_due) backlogWhenLastDue = await backlog();
      }
      const { rows } = await sql<{ late: number }>`
        select extract(epoch from resolved_at - expires_at)::float8 as late
          from credits.holds where idempotency_key like 'due-%' and state = 'expired'`.execute(db);
      return {
        design: options.design,
        holds: options.holds,
        expired: rows.length,
        lateness: rows.map((row) => row.late),
        backlogAtStart,
        backlogWhenLastDue,
        timedOut: active > 0,
      };
    } finally {
      await runner.stop("bench done");
    }
  } finally {
    await drop(serverUrl, scratch);
  }
}

export function summarizePunctuality(runs: Punctuality[]): string[][] {
  return [
    [
      "expiry design",
      "holds expired",
      "lateness p50 s",
      "p99 s",
      "max s",
      "backlog at start",
      "backlog when the last hold fell due",
    ],
    ...runs.map((run) => [
      run.design,
      `${run.expired} of ${run.holds}${run.timedOut ? " (gave up waiting)" : ""}`,
      percentile(run.lateness, 50).toFixed(2),
      percentile(run.lateness, 99).toFixed(2),
      Math.max(0, ...run.lateness).toFixed(2),
      run.backlogAtStart.toLocaleString("en"),
      run.backlogWhenLastDue.toLocaleString("en"),
    ]),
  ];
}
