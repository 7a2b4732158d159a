/**
 * What pgjobs costs on top of its engine: no-op jobs through bare graphile-worker and through a
 * pgjobs worker (its defaults: history, liveness, local queue), with the same concurrency, local
 * queue size and batch delays, interleaved in one run; medians and ratios. Target: ≥ 0.9×.
 *
 *   npx node bench/history-overhead.ts [jobs=20000] [runs=5] [concurrency=10] [localQueueSize=concurrency*2]
 *
 * Uses DATABASE_URL's server (or the embedded one) and creates scratch databases there. The
 * machine's development server runs with autovacuum off, so each run starts from a VACUUM
 * ANALYZE, as autovacuum would leave a production server.
 */
import { run, runMigrations, type TaskList } from "graphile-worker";
import { sql } from "kysely";
import { z } from "zod";
import { defaultLocalQueueSize, loadConfig } from "../src/config.ts";
import { createDb, createPool } from "../src/db/connection.ts";
import { resolveDatabase } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { syncTaskRegistry } from "../src/enqueue/sql-allowlist.ts";
import { createLogger, toGraphileLogger } from "../src/logger.ts";
import { startWorker } from "../src/runner/worker.ts";
import { defineTask } from "../src/tasks/define-task.ts";
import { createEmptyDatabase, databaseUrl, dropDatabase } from "../src/testing/test-database.ts";

const [jobs = 20_000, runs = 5, concurrency = 10, localQueueArg] = process.argv.slice(2).map(Number);
const localQueueSize = localQueueArg ?? defaultLocalQueueSize(concurrency);
const config = loadConfig();
const logger = createLogger({ logLevel: "warn", logFormat: "json" });
const silent = createLogger({ logLevel: "silent", logFormat: "json" });

// A transactional task exists to commit its effects with its success, so both transactional
// runners write one row in their job's transaction: a twin that writes nothing commits nothing
// (PostgreSQL skips the WAL flush of a read-only transaction) and would measure the flush, not
// pgjobs. The default modes stay no-op.
const noop = (transactional: boolean) =>
  defineTask({
    name: "bench__noop",
    payload: z.object({ n: z.number() }),
    options: { transactional },
    run: async ({ n }, ctx) => {
      if (transactional) await sql`insert into bench_effects (n) values (${n})`.execute(ctx.db);
      return null;
    },
  });

// Each pgjobs mode has its bare twin: the same task shape (in a transaction or not) without pgjobs.
const modes = [
  "bare graphile-worker",
  "pgjobs (default options)",
  "bare graphile-worker, task in a transaction",
  "pgjobs (transactional: true)",
] as const;
type Mode = (typeof modes)[number];
const isBare = (mode: Mode) => mode.startsWith("bare");
const twin = (mode: Mode): Mode =>
  mode === "pgjobs (transactional: true)" ? "bare graphile-worker, task in a transaction" : "bare graphile-worker";

const server = await resolveDatabase(config, logger);
const databases = new Map<Mode, string>();
try {
  for (const mode of modes) {
    const name = await createEmptyDatabase(server.url, "pgjobs_bench");
    databases.set(mode, name);
    const pool = createPool(databaseUrl(server.url, name), { max: 4 });
    if (isBare(mode)) {
      await runMigrations({ pgPool: pool, logger: toGraphileLogger(silent) });
    } else {
      await migrate(pool, silent);
      await syncTaskRegistry(createDb(pool), [noop(true)]);
    }
    await pool.query("create table bench_effects (n integer not null)");
    await pool.end();
  }

  const samples = new Map<Mode, number[]>(modes.map((mode) => [mode, []]));
  for (let round = 1; round <= runs; round++) {
    for (const mode of modes) {
      const seconds = await timeOneRun(mode, databases.get(mode)!);
      samples.get(mode)!.push(jobs / seconds);
      console.log(`round ${round}: ${mode.padEnd(44)} ${(jobs / seconds).toFixed(0).padStart(6)} jobs/s`);
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log(
    `\n${jobs} no-op jobs, concurrency ${concurrency}, local queue ${localQueueSize}, batch delays 0, ` +
      `${runs} interleaved runs (medians)`,
  );
  console.log("| runner | jobs/s | × bare graphile-worker | × its bare twin |");
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
  await sql`truncate bench_effects`.execute(db);
  if (!isBare(mode)) await sql`truncate pgjobs.job_runs, pgjobs.workers`.execute(db);
  await sql`select graphile_worker.add_jobs(array_agg(('bench__noop', json_build_object('n', n), null, null, null, null, null, null)::graphile_worker.job_spec))
              from generate_series(1, ${jobs}::int) as n`.execute(db);
  await sql`vacuum analyze graphile_worker._private_jobs`.execute(db);
  if (!isBare(mode)) await sql`vacuum analyze pgjobs.job_runs`.execute(db);

  const started = performance.now();
  let stop: () => Promise<unknown>;
  if (isBare(mode)) {
    const taskList: TaskList =
      mode === "bare graphile-worker"
        ? { bench__noop: () => {} }
        : {
            bench__noop: (payload) =>
              db
                .transaction()
                .execute((trx) =>
                  sql`insert into bench_effects (n) values (${(payload as { n: number }).n})`
                    .execute(trx)
                    .then(() => {}),
                ),
          };
    const runner = await run({
      pgPool: pool,
      taskList,
      concurrency,
      // Without this graphile-worker reads ./crontab, and a scheduled job would join the count.
      parsedCronItems: [],
      logger: toGraphileLogger(silent),
      preset: {
        worker: { localQueue: { size: localQueueSize }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
      },
    });
    stop = () => runner.stop();
  } else {
    const worker = await startWorker({
      pool,
      db,
      logger: silent,
      concurrency,
      pollIntervalMs: 1000,
      shutdownTimeoutMs: 10_000,
      livenessTimeoutMs: 30_000,
      localQueueSize,
      tasks: [noop(mode === "pgjobs (transactional: true)")],
      crontab: "",
      trustProcessId: true,
    });
    stop = () => worker.stop("bench run done");
  }
  for (;;) {
    const { rows } = await sql<{ left: string }>`select count(*) as left from graphile_worker._private_jobs`.execute(
      db,
    );
    if (rows[0]?.left === "0") break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const seconds = (performance.now() - started) / 1000;
  await stop();
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
