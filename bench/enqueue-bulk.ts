/**
 * Bulk enqueue (issue #8, acceptance 8): 20,000 jobs in one transaction, pgjobs against bare
 * graphile-worker in the same run, interleaved; medians and ratios. Targets: enqueueMany and
 * pgjobs.enqueue_many ≥ 0.9× graphile-worker's add_jobs; `select pgjobs.enqueue(…) from
 * generate_series(…)` ≥ 0.5× `select graphile_worker.add_job(…)` the same way.
 *
 *   npx node bench/enqueue-bulk.ts [jobs=20000] [rounds=5]
 *
 * Two scratch databases on DATABASE_URL's server (or the embedded one): one with only
 * graphile-worker's schema (the bare engine) and one migrated by pgjobs (its triggers on the jobs
 * table included). Each measurement starts from an empty jobs table after VACUUM ANALYZE (the
 * development server runs with autovacuum off) and times begin → the enqueue → commit from the
 * client. The payload is `{ to: "user<n>@example.com", n }`, validated by zod on the TypeScript side.
 */
import os from "node:os";
import { makeWorkerUtils, runMigrations, type WorkerUtils } from "graphile-worker";
import { type Kysely, sql } from "kysely";
import type pg from "pg";
import { z } from "zod";
import { createPgJobs } from "../src/client.ts";
import { loadConfig } from "../src/config.ts";
import { createDb, createPool } from "../src/db/connection.ts";
import { resolveDatabase } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { syncTaskRegistry } from "../src/enqueue/sql-allowlist.ts";
import { createLogger, toGraphileLogger } from "../src/logger.ts";
import { defineTask } from "../src/tasks/define-task.ts";
import { createEmptyDatabase, databaseUrl, dropDatabase } from "../src/testing/test-database.ts";

const [jobs = 20_000, rounds = 5] = process.argv.slice(2).map(Number);
const config = loadConfig();
const logger = createLogger({ logLevel: "warn", logFormat: "json" });
const silent = createLogger({ logLevel: "silent", logFormat: "json" });

const mailTask = defineTask({
  name: "bench__mail",
  payload: z.object({ to: z.email(), n: z.number().int() }),
  run: () => Promise.resolve(null),
});
const pgjobs = createPgJobs({ tasks: [mailTask] as const });

type Place = "bare" | "pgjobs";
interface Way {
  name: string;
  place: Place;
  run(db: Kysely<unknown>, utils: WorkerUtils): Promise<void>;
}

// SQL builds its payloads in the statement, the same way on both sides.
const payloadJson = sql`json_build_object('to', 'user' || n || '@example.com', 'n', n)`;
const ways: Way[] = [
  {
    name: "graphile-worker addJobs (WorkerUtils)",
    place: "bare",
    run: async (_db, utils) => {
      const specs = Array.from({ length: jobs }, (_, n) => ({
        identifier: "bench__mail",
        payload: { to: `user${n}@example.com`, n },
      }));
      await utils.addJobs(specs);
    },
  },
  {
    name: "pgjobs enqueueMany (TypeScript, validated)",
    place: "pgjobs",
    run: async (db) => {
      const batch = Array.from({ length: jobs }, (_, n) => ({
        task: "bench__mail" as const,
        payload: { to: `user${n}@example.com`, n },
      }));
      await db.transaction().execute((trx) => pgjobs.enqueueMany(trx, batch));
    },
  },
  {
    name: "SQL graphile_worker.add_jobs",
    place: "bare",
    run: (db) => addJobsSql(db),
  },
  {
    name: "SQL pgjobs.enqueue_many",
    place: "pgjobs",
    run: async (db) => {
      await sql`select count(*) from pgjobs.enqueue_many((
                  select jsonb_agg(jsonb_build_object('task', 'bench__mail', 'payload', ${payloadJson}::jsonb))
                    from generate_series(1, ${jobs}::int) as n))`.execute(db);
    },
  },
  {
    name: "SQL graphile_worker.add_jobs, pgjobs' database",
    place: "pgjobs",
    run: (db) => addJobsSql(db),
  },
  {
    name: "select graphile_worker.add_job(…) from generate_series",
    place: "bare",
    run: async (db) => {
      await sql`select count(graphile_worker.add_job('bench__mail', ${payloadJson}))
                  from generate_series(1, ${jobs}::int) as n`.execute(db);
    },
  },
  {
    name: "select pgjobs.enqueue(…) from generate_series",
    place: "pgjobs",
    run: async (db) => {
      await sql`select count(pgjobs.enqueue('bench__mail', ${payloadJson}::jsonb))
                  from generate_series(1, ${jobs}::int) as n`.execute(db);
    },
  },
  {
    name: "select graphile_worker.add_job(…) from generate_series, pgjobs' database",
    place: "pgjobs",
    run: async (db) => {
      await sql`select count(graphile_worker.add_job('bench__mail', ${payloadJson}))
                  from generate_series(1, ${jobs}::int) as n`.execute(db);
    },
  },
];

async function addJobsSql(db: Kysely<unknown>): Promise<void> {
  await sql`select count(*) from graphile_worker.add_jobs((
              select array_agg(('bench__mail', ${payloadJson}, null, null, null, null, null, null)::graphile_worker.job_spec)
                from generate_series(1, ${jobs}::int) as n))`.execute(db);
}

/** The ratios the issue asks about: [way, baseline, target]. */
const ratios: Array<[string, string, number]> = [
  ["pgjobs enqueueMany (TypeScript, validated)", "SQL graphile_worker.add_jobs", 0.9],
  ["pgjobs enqueueMany (TypeScript, validated)", "graphile-worker addJobs (WorkerUtils)", 0.9],
  ["SQL pgjobs.enqueue_many", "SQL graphile_worker.add_jobs", 0.9],
  ["SQL pgjobs.enqueue_many", "SQL graphile_worker.add_jobs, pgjobs' database", 0.9],
  ["select pgjobs.enqueue(…) from generate_series", "select graphile_worker.add_job(…) from generate_series", 0.5],
  [
    "select pgjobs.enqueue(…) from generate_series",
    "select graphile_worker.add_job(…) from generate_series, pgjobs' database",
    0.5,
  ],
];

const server = await resolveDatabase(config, logger);
const names: Record<Place, string> = { bare: "", pgjobs: "" };
const pools = new Map<Place, pg.Pool>();
try {
  for (const place of ["bare", "pgjobs"] as const) {
    names[place] = await createEmptyDatabase(server.url, `pgjobs_bench_enqueue_${place}`);
    const pool = createPool(databaseUrl(server.url, names[place]), { max: 2 });
    pools.set(place, pool);
    if (place === "bare") {
      await runMigrations({ pgPool: pool, logger: toGraphileLogger(silent) });
    } else {
      await migrate(pool, silent);
      await syncTaskRegistry(createDb(pool), [mailTask]);
    }
  }
  const utils = await makeWorkerUtils({ pgPool: pools.get("bare")!, logger: toGraphileLogger(silent) });
  const samples = new Map<string, number[]>(ways.map((way) => [way.name, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const way of ways) {
      const db = createDb(pools.get(way.place)!) as unknown as Kysely<unknown>;
      await sql`delete from graphile_worker._private_jobs`.execute(db);
      await sql`vacuum analyze graphile_worker._private_jobs`.execute(db);
      const started = performance.now();
      await way.run(db, utils);
      const seconds = (performance.now() - started) / 1000;
      const { rows } = await sql<{ n: string }>`select count(*) as n from graphile_worker._private_jobs`.execute(db);
      if (Number(rows[0]?.n) !== jobs) throw new Error(`${way.name}: ${rows[0]?.n} jobs, expected ${jobs}`);
      samples.get(way.name)!.push(jobs / seconds);
      console.log(`round ${round}: ${way.name.padEnd(72)} ${(jobs / seconds).toFixed(0).padStart(7)} jobs/s`);
    }
  }
  await utils.release();

  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const { rows } = await sql<{ version: string }>`select version()`.execute(createDb(pools.get("bare")!));
  console.log(
    `\n${jobs} jobs per enqueue, one transaction each, ${rounds} interleaved rounds (medians); ` +
      `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${rows[0]?.version.split(" on ")[0]}, Node ${process.versions.node}, ` +
      `load average ${os
        .loadavg()
        .map((load) => load.toFixed(1))
        .join(" ")}, ${new Date().toISOString().slice(0, 10)}\n`,
  );
  console.log("| way | database | jobs/s (median) | runs (jobs/s) |");
  console.log("| --- | --- | ---: | --- |");
  for (const way of ways) {
    const values = samples.get(way.name)!;
    console.log(
      `| ${way.name} | ${way.place === "bare" ? "bare graphile-worker" : "pgjobs"} | ${median(values).toFixed(0)} | ` +
        `${values.map((value) => value.toFixed(0)).join(", ")} |`,
    );
  }
  console.log("\n| ratio | median | target | met |");
  console.log("| --- | ---: | ---: | --- |");
  for (const [way, baseline, target] of ratios) {
    const ratio = median(samples.get(way)!) / median(samples.get(baseline)!);
    console.log(`| ${way} ÷ ${baseline} | ${ratio.toFixed(2)} | ${target} | ${ratio >= target ? "yes" : "no"} |`);
  }
} finally {
  for (const pool of pools.values()) await pool.end();
  for (const name of Object.values(names)) if (name) await dropDatabase(server.url, name);
  await server.release();
}
