/**
 * What history costs: 20,000 no-op jobs through bare graphile-worker and through pgjobs' runner
 * with history on, same concurrency and batching, interleaved in one run; reports medians and
 * the ratio. Target: pgjobs ≥ 0.8× bare graphile-worker's jobs/s.
 *
 *   npx node bench/history-overhead.ts [jobs=20000] [runs=3] [concurrency=10]
 *
 * Uses DATABASE_URL's server (or the embedded one) and creates scratch databases there.
 */
import { run, type TaskList } from "graphile-worker";
import { sql } from "kysely";
import { z } from "zod";
import { loadConfig } from "../src/config.ts";
import { createDb, createPool } from "../src/db/connection.ts";
import { resolveDatabase } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { syncTaskRegistry } from "../src/enqueue/task-registry.ts";
import { createLogger, toGraphileLogger } from "../src/logger.ts";
import { buildTaskList } from "../src/runner/task-list.ts";
import { defineTask } from "../src/tasks/define-task.ts";
import { createEmptyDatabase, databaseUrl, dropDatabase } from "../src/testing/test-database.ts";

const [jobs = 20_000, runs = 3, concurrency = 10] = process.argv.slice(2).map(Number);
const config = loadConfig();
const logger = createLogger({ logLevel: "warn", logFormat: "json" });
const silent = createLogger({ logLevel: "silent", logFormat: "json" });

const noop = (transactional: boolean) =>
  defineTask({
    name: "bench__noop",
    payload: z.object({ n: z.number() }),
    options: { transactional },
    run: () => Promise.resolve(null),
  });

// Each pgjobs mode has its bare twin: the same task shape (in a transaction or not) without history.
type Mode =
  | "bare graphile-worker"
  | "pgjobs (default options)"
  | "bare graphile-worker, task in a transaction"
  | "pgjobs (transactional: true)";
const modes: Mode[] = [
  "bare graphile-worker",
  "pgjobs (default options)",
  "bare graphile-worker, task in a transaction",
  "pgjobs (transactional: true)",
];
const isBare = (mode: Mode) => mode.startsWith("bare");

const server = await resolveDatabase(config, logger);
const databases = new Map<Mode, string>();
try {
  for (const mode of modes) {
    const name = await createEmptyDatabase(server.url, "pgjobs_bench");
    databases.set(mode, name);
    const pool = createPool(databaseUrl(server.url, name), { max: 4 });
    if (isBare(mode)) {
      await run({ pgPool: pool, taskList: {}, parsedCronItems: [], logger: toGraphileLogger(silent) }).then((runner) =>
        runner.stop(),
      );
    } else {
      await migrate(pool, silent);
      await syncTaskRegistry(createDb(pool), [noop(true)]);
    }
    await pool.end();
  }

  const samples = new Map<Mode, number[]>(modes.map((mode) => [mode, []]));
  for (let round = 1; round <= runs; round++) {
    for (const mode of modes) {
      const seconds = await timeOneRun(mode, databases.get(mode)!);
      samples.get(mode)!.push(jobs / seconds);
      console.log(`round ${round}: ${mode.padEnd(28)} ${(jobs / seconds).toFixed(0).padStart(6)} jobs/s`);
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const twin = (mode: Mode): Mode =>
    mode === "pgjobs (transactional: true)" ? "bare graphile-worker, task in a transaction" : "bare graphile-worker";
  console.log(`\n${jobs} no-op jobs, concurrency ${concurrency}, batch delays 0, ${runs} interleaved runs (medians)`);
  console.log("| runner | jobs/s (median) | × bare graphile-worker | × its bare twin |");
  console.log("| --- | ---: | ---: | ---: |");
  const bare = median(samples.get("bare graphile-worker")!);
  for (const mode of modes) {
    const value = median(samples.get(mode)!);
    const twinValue = median(samples.get(twin(mode))!);
    console.log(`| ${mode} | ${value.toFixed(0)} | ${(value / bare).toFixed(2)} | ${(value / twinValue).toFixed(2)} |`);
  }
} finally {
  for (const name of databases.values()) await dropDatabase(server.url, name);
  await server.release();
}

async function timeOneRun(mode: Mode, database: string): Promise<number> {
  const pool = createPool(databaseUrl(server.url, database), { max: concurrency + 4 });
  const db = createDb(pool);
  await sql`delete from graphile_worker._private_jobs`.execute(db);
  if (!isBare(mode)) await sql`truncate pgjobs.job_runs`.execute(db);
  await sql`select graphile_worker.add_jobs(array_agg(('bench__noop', json_build_object('n', n), null, null, null, null, null, null)::graphile_worker.job_spec))
              from generate_series(1, ${jobs}::int) as n`.execute(db);
  const taskList: TaskList =
    mode === "bare graphile-worker"
      ? { bench__noop: () => {} }
      : mode === "bare graphile-worker, task in a transaction"
        ? { bench__noop: () => db.transaction().execute(() => Promise.resolve()) }
        : buildTaskList([noop(mode === "pgjobs (transactional: true)")], db, silent);
  const started = performance.now();
  const runner = await run({
    pgPool: pool,
    taskList,
    concurrency,
    // Without this graphile-worker reads ./crontab, and a scheduled job would join the count.
    parsedCronItems: [],
    logger: toGraphileLogger(silent),
    preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
  });
  for (;;) {
    const { rows } = await sql<{ left: string }>`select count(*) as left from graphile_worker._private_jobs`.execute(
      db,
    );
    if (rows[0]?.left === "0") break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const seconds = (performance.now() - started) / 1000;
  await runner.stop();
  if (!isBare(mode)) {
    const { rows } = await sql<{
      n: string;
    }>`select count(*) as n from pgjobs.job_runs where state = 'succeeded'`.execute(db);
    if (Number(rows[0]?.n) !== jobs)
      throw new Error(`${mode}: history has ${rows[0]?.n} succeeded runs, expected ${jobs}`);
  }
  await pool.end();
  return seconds;
}
