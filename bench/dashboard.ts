/**
 * How fast the dashboard answers on a big database: 1,000,000 history rows (attempts that ended
 * over the last 24 hours, ~11.6 per second: the dense case for every time window) and 100,000
 * jobs waiting in the queue. Every page is requested over HTTP several times, and `pgjobs status`
 * is run as a real process (and its query alone); reports the median, fastest and slowest, with
 * the machine.
 *
 *   npx node bench/dashboard.ts [requests=7] [--keep]
 *
 * Uses DATABASE_URL's server (or the embedded one); creates a scratch database there and drops it
 * (--keep leaves it, to EXPLAIN by hand). The seeded tables are VACUUM ANALYZEd first: the
 * development server runs with autovacuum off.
 */
import { execFileSync } from "node:child_process";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { sql } from "kysely";
import { loadConfig } from "../src/config.ts";
import { startDashboard } from "../src/dashboard/index.ts";
import { createDb, createPool } from "../src/db/connection.ts";
import { resolveDatabase } from "../src/db/database.ts";
import { createLogger } from "../src/logger.ts";
import { readFileSync } from "node:fs";
import { readStatus } from "../src/read/status.ts";
import { prepareDatabase } from "../src/setup.ts";
import { tasks } from "../src/app/tasks/index.ts";
import { createEmptyDatabase, databaseUrl, dropDatabase } from "../src/testing/test-database.ts";

const args = process.argv.slice(2);
const keep = args.includes("--keep");
const requests = Number(args.find((arg) => /^\d+$/.test(arg)) ?? 7);
const HISTORY_ROWS = 1_000_000;
const WAITING_JOBS = 100_000;

const config = loadConfig();
const logger = createLogger({ logLevel: "warn", logFormat: "json" });
const silent = createLogger({ logLevel: "silent", logFormat: "json" });
const server = await resolveDatabase(config, logger);
const name = await createEmptyDatabase(server.url, "pgjobs_bench_dashboard");
const pool = createPool(databaseUrl(server.url, name), { max: 10 });
const db = createDb(pool);

async function seed(): Promise<void> {
  await prepareDatabase(pool, db, silent, { tasks });
  await sql`insert into graphile_worker._private_job_queues (queue_name) values ('credits')`.execute(db);
  await sql`insert into graphile_worker._private_tasks (identifier) select task from pgjobs.task_registry`.execute(db);
  // History in finish order (as it is written): 94% succeeded, the rest failed (a third retried
  // and then succeeded), cancelled, rejected, timed out. The hourly prune task has 24 rows: a rare
  // task for the filters.
  await sql`
    insert into pgjobs.job_runs (job_id, task, queue, payload, payload_bytes, attempt, max_attempts, state, will_retry,
                                 result, error_message, error_stack, worker_id, started_at, finished_at)
    select case when n % 50 = 2 then n - 1 else n end,
           case when n % 41667 = 0 then 'pgjobs__prune_history'
                else (array['pgjobs__ping', 'credits__expire_hold', 'credits__expire_holds'])[1 + n % 3] end,
           case when n % 7 = 3 then 'credits' end,
           json_build_object('message', 'bench ' || n), 30,
           case when n % 50 = 2 then 2 else 1 end, 3, s.state, n % 50 = 1,
           case when s.state = 'succeeded' then json_build_object('ok', true) end,
           case when s.state in ('failed', 'rejected', 'timed_out') then 'bench failure ' || n end,
           case when s.state = 'failed' then E'Error: bench failure\n    at run (bench.ts:1:1)' end,
           case when s.state <> 'cancelled' then 'pool-bench-a' end,
           case when s.state <> 'cancelled' then t.finished - make_interval(secs => 0.01 + (n % 997) / 500.0) end,
           t.finished
      from generate_series(1, ${HISTORY_ROWS}::int) n
      cross join lateral (select now() - interval '24 hours' + n * (interval '24 hours' / ${HISTORY_ROWS}::int) as finished) t
      cross join lateral (select case when n % 50 = 1 or n % 100 = 3 then 'failed'
                                      when n % 100 = 5 then 'cancelled'
                                      when n % 100 = 7 then 'rejected'
                                      when n % 100 = 9 then 'timed_out'
                                      else 'succeeded' end as state) s`.execute(db);
  // Waiting jobs, due over the last hour, ids after the history's.
  await sql`
    insert into graphile_worker._private_jobs (id, job_queue_id, task_id, payload, run_at, attempts, max_attempts,
                                               created_at)
    overriding system value
    select ${HISTORY_ROWS}::int + n,
           case when n % 7 = 3 then (select id from graphile_worker._private_job_queues where queue_name = 'credits') end,
           (select id from graphile_worker._private_tasks
             where identifier = (array['pgjobs__ping', 'credits__expire_hold', 'credits__expire_holds'])[1 + n % 3]),
           json_build_object('message', 'waiting ' || n),
           now() - interval '1 hour' + n * (interval '50 minutes' / ${WAITING_JOBS}::int), 0, 3,
           now() - interval '1 hour' + n * (interval '50 minutes' / ${WAITING_JOBS}::int)
      from generate_series(1, ${WAITING_JOBS}::int) n`.execute(db);
  await sql`alter table graphile_worker._private_jobs alter column id restart with ${sql.lit(HISTORY_ROWS + WAITING_JOBS + 1)}`.execute(
    db,
  );
  // Two live workers, one running two jobs; one stopped, one reaped.
  await sql`
    insert into pgjobs.workers (id, host, pid, version, concurrency, tasks, state, stopped_at, stop_reason)
    values ('pool-bench-a', 'bench-1', 101, 'bench', 4, '{}', 'running', null, null),
           ('pool-bench-b', 'bench-2', 102, 'bench', 4, '{}', 'running', null, null),
           ('pool-bench-c', 'bench-3', 103, 'bench', 4, '{}', 'stopped', now() - interval '1 hour', 'SIGTERM'),
           ('pool-bench-d', 'bench-4', 104, 'bench', 4, '{}', 'lost', now() - interval '2 hours', 'no heartbeat')`.execute(
    db,
  );
  await sql`
    with taken as (
      update graphile_worker._private_jobs set locked_by = 'pool-bench-a', locked_at = now(), attempts = 1
       where id in (${HISTORY_ROWS + 1}::bigint, ${HISTORY_ROWS + 2}::bigint) returning id, locked_at
    )
    update pgjobs.workers w
       set running_job_ids = (select array_agg(id order by id) from taken),
           running_locked_at = (select array_agg(locked_at order by id) from taken),
           running_started_at = (select array_agg(locked_at order by id) from taken)
     where w.id = 'pool-bench-a'`.execute(db);
  await sql`
    insert into graphile_worker._private_known_crontabs (identifier, known_since, last_execution)
    values ('pgjobs_prune_history', now() - interval '2 days', date_trunc('hour', now()) + interval '17 minutes' - interval '1 hour'),
           ('credits_expire_holds', now() - interval '2 days', now() - interval '3 hours')`.execute(db);
  for (const table of [
    "pgjobs.job_runs",
    "graphile_worker._private_jobs",
    "graphile_worker._private_tasks",
    "graphile_worker._private_job_queues",
    "graphile_worker._private_known_crontabs",
    "pgjobs.workers",
    "pgjobs.task_registry",
  ]) {
    await sql`vacuum analyze ${sql.raw(table)}`.execute(db);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const started = performance.now();
try {
  await seed();
  console.log(
    `seeded ${HISTORY_ROWS} history rows and ${WAITING_JOBS} waiting jobs in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  const loadBefore = os.loadavg()[0]!;
  const dashboard = await startDashboard({
    db,
    tasks,
    crontab: readFileSync(new URL("../crontab", import.meta.url), "utf8"),
    logger: silent,
    port: 0,
  });
  const hourAgo = (hours: number) => new Date(Date.now() - hours * 3600_000).toISOString().slice(0, 19);
  const pages: Array<[string, string]> = [
    ["overview (3 h chart)", "/"],
    ["overview (24 h chart)", "/?hours=24"],
    ["jobs, all, newest page", "/jobs"],
    ["jobs, all, page at job 500,000", "/jobs?before=500000"],
    ["jobs, failed", "/jobs?state=failed"],
    ["jobs, queued in queue credits", "/jobs?state=queued&queue=credits"],
    ["jobs, rare task (24 rows)", "/jobs?task=pgjobs__prune_history"],
    ["jobs, finished 13 h to 12 h ago", `/jobs?state=finished&from=${hourAgo(13)}&to=${hourAgo(12)}`],
    ["job detail, finished", "/jobs/999997"],
    ["job detail, in the queue", `/jobs/${HISTORY_ROWS + 50_000}`],
    ["tasks (1 h)", "/tasks"],
    ["tasks (24 h)", "/tasks?hours=24"],
    ["cron", "/cron"],
    ["workers", "/workers"],
    ["metrics", "/metrics"],
    ["healthz", "/healthz"],
  ];
  // The first page that needs the rollups rolls the seeded day up (once per deployment, then an
  // hour at a time): timed on its own.
  const firstStarted = performance.now();
  await (await fetch(`${dashboard.url}/`)).arrayBuffer();
  const firstMs = performance.now() - firstStarted;
  const results: Array<{ page: string; path: string; median: number; min: number; max: number }> = [];
  for (const [page, path] of pages) {
    const times: number[] = [];
    for (let i = 0; i <= requests; i++) {
      const t0 = performance.now();
      const response = await fetch(`${dashboard.url}${path}`);
      await response.arrayBuffer();
      const ms = performance.now() - t0;
      // /healthz says 503 once the seeded workers' heartbeats are older than the bound: an answer too.
      if (response.status >= 500 && path !== "/healthz") throw new Error(`${path} answered ${response.status}`);
      if (i > 0) times.push(ms); // the first request warms caches and plans
    }
    results.push({ page, path, median: median(times), min: Math.min(...times), max: Math.max(...times) });
  }
  await dashboard.close();
  // `pgjobs status`: what the command reads (src/read/status.ts), then the command itself as a
  // process, which adds Node's start, loading the app's config and connecting.
  const timed = async (page: string, path: string, run: () => unknown) => {
    const times: number[] = [];
    for (let i = 0; i <= requests; i++) {
      const t0 = performance.now();
      await run();
      if (i > 0) times.push(performance.now() - t0);
    }
    results.push({ page, path, median: median(times), min: Math.min(...times), max: Math.max(...times) });
  };
  await timed("`pgjobs status`, its query alone", "readStatus(db)", () => readStatus(db));
  const cliEnv = { ...process.env, DATABASE_URL: databaseUrl(server.url, name), LOG_LEVEL: "warn" };
  const main = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
  for (const form of [["status"], ["status", "--json"]]) {
    await timed(`\`pgjobs ${form.join(" ")}\`, a process`, form.join(" "), () =>
      execFileSync(process.execPath, [main, ...form], { env: cliEnv, stdio: ["ignore", "pipe", "inherit"] }),
    );
  }
  const nodeAlone = () => execFileSync(process.execPath, ["-e", ""], { stdio: "ignore" });
  await timed("(Node starting and exiting, for scale)", "node -e ''", nodeAlone);
  const { rows } = await sql<{ version: string }>`select version()`.execute(db);
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  console.log(
    `\nmachine: ${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; ` +
      `${rows[0]!.version.split(",")[0]}; Node ${process.version}`,
  );
  console.log(
    `${requests} requests per page after one warm-up, sequential, over HTTP on 127.0.0.1; ` +
      `1-minute load average ${loadBefore.toFixed(2)} before, ${os.loadavg()[0]!.toFixed(2)} after\n`,
  );
  console.log(`first request, which rolls the seeded day up: ${firstMs.toFixed(0)} ms\n`);
  console.log("| page | path | median ms | min ms | max ms |");
  console.log("| --- | --- | ---: | ---: | ---: |");
  for (const result of results) {
    console.log(
      `| ${result.page} | \`${result.path.replace(/from=[^&]+&to=[^&]+/, "from=…&to=…")}\` | ${result.median.toFixed(1)} | ${result.min.toFixed(1)} | ${result.max.toFixed(1)} |`,
    );
  }
} finally {
  await pool.end();
  if (keep) console.log(`kept database ${name}`);
  else await dropDatabase(server.url, name);
  await server.release();
}
