/**
 * What the safe sweep costs: expiring 1,000,000 due holds through the credits__expire_holds task
 * (batches of 1000 with SKIP LOCKED, a ledger entry per hold, per-account updates, a commit per
 * batch) against one raw `UPDATE ... RETURNING` over the same rows (no ledger, no accounts, one
 * transaction). Interleaved runs; reports holds/s for each, medians, and the ratio.
 *
 *   npx node bench/credits-expire.ts [holds=1000000] [runs=3] [batchSize=1000]
 *
 * Uses DATABASE_URL's server (or the embedded one); creates a scratch database there and drops it.
 */
import { sql } from "kysely";
import { loadConfig } from "../src/config.ts";
import { createDb, createPool } from "../src/db/connection.ts";
import { resolveDatabase } from "../src/db/database.ts";
import { createLogger } from "../src/logger.ts";
import { prepareDatabase } from "../src/setup.ts";
import { expireHoldsTask } from "../src/tasks/credits/expire-holds.ts";
import { createEmptyDatabase, databaseUrl, dropDatabase } from "../src/testing/test-database.ts";

const [holds = 1_000_000, runs = 3, batchSize = 1000] = process.argv.slice(2).map(Number);
const ACCOUNTS = 1000;
const config = loadConfig();
const logger = createLogger({ logLevel: "warn", logFormat: "json" });
const silent = createLogger({ logLevel: "silent", logFormat: "json" });

const server = await resolveDatabase(config, logger);
const name = await createEmptyDatabase(server.url, "pgjobs_bench_credits");
const pool = createPool(databaseUrl(server.url, name), { max: 4 });
const db = createDb(pool);

/**
 * Fresh due holds, inserted directly (no place_hold, so no expiry job per hold): accounts whose
 * balance and held match the holds, and the holds, each one INSERT ... SELECT generate_series.
 * Placement ledger entries are left out; the sweep neither reads nor needs them.
 */
async function generate(): Promise<void> {
  await sql`set session_replication_role = replica`.execute(db); // lets the truncate pass the ledger's guard
  await sql`truncate credits.ledger_entries, credits.holds, credits.accounts restart identity`.execute(db);
  await sql`set session_replication_role = default`.execute(db);
  await sql`
    insert into credits.accounts (id) select 'bench-' || a from generate_series(0, ${ACCOUNTS - 1}::int) a`.execute(db);
  await sql`
    insert into credits.holds (account_id, amount, expires_at, idempotency_key, created_at)
    select 'bench-' || (i % ${ACCOUNTS}::int), 1, now() - interval '1 hour' + i * interval '1 millisecond',
           'bench-' || i, now() - interval '2 hours'
      from generate_series(1, ${holds}::int) i`.execute(db);
  await sql`
    update credits.accounts a set balance = t.held, held = t.held
      from (select account_id, sum(amount) as held from credits.holds group by account_id) t
     where a.id = t.account_id`.execute(db);
  await sql`vacuum analyze credits.holds`.execute(db);
  await sql`vacuum analyze credits.accounts`.execute(db);
  await sql`checkpoint`.execute(db);
}

async function timeSweep(): Promise<number> {
  const controller = new AbortController();
  const started = performance.now();
  const result = await expireHoldsTask.run(
    { batchSize, maxAccounts: 50, maxBatches: 1_000_000 },
    {
      job: { id: "0", taskName: expireHoldsTask.name, attempt: 1, maxAttempts: 1, queue: null, runAt: new Date() },
      logger: silent,
      signal: controller.signal,
      db,
    },
  );
  const seconds = (performance.now() - started) / 1000;
  if (result.expired !== holds) throw new Error(`sweep expired ${result.expired} of ${holds} holds`);
  return seconds;
}

async function timeRawUpdate(): Promise<number> {
  const started = performance.now();
  const { rows } = await sql<{ id: string }>`
    update credits.holds set state = 'expired', resolved_at = now()
     where state = 'active' and expires_at <= now()
    returning id`.execute(db);
  const seconds = (performance.now() - started) / 1000;
  if (rows.length !== holds) throw new Error(`raw update expired ${rows.length} of ${holds} holds`);
  return seconds;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
};

try {
  await prepareDatabase(pool, db, silent);
  const timings = { sweep: [] as number[], raw: [] as number[] };
  for (let round = 1; round <= runs; round++) {
    // Alternate which goes first, so neither always runs on a warmer cache.
    const order = round % 2 === 1 ? (["sweep", "raw"] as const) : (["raw", "sweep"] as const);
    for (const mode of order) {
      await generate();
      const seconds = mode === "sweep" ? await timeSweep() : await timeRawUpdate();
      timings[mode].push(seconds);
      console.error(`round ${round}: ${mode} ${seconds.toFixed(2)} s (${Math.round(holds / seconds)} holds/s)`);
    }
  }
  const sweep = holds / median(timings.sweep);
  const raw = holds / median(timings.raw);
  const rows = [
    ["way", "median s", "holds/s", "runs (s)"],
    [
      `sweep task (batch ${batchSize}, ledger, SKIP LOCKED)`,
      median(timings.sweep).toFixed(2),
      Math.round(sweep).toLocaleString("en"),
      timings.sweep.map((s) => s.toFixed(2)).join(", "),
    ],
    [
      "raw UPDATE ... RETURNING",
      median(timings.raw).toFixed(2),
      Math.round(raw).toLocaleString("en"),
      timings.raw.map((s) => s.toFixed(2)).join(", "),
    ],
  ];
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  console.log(`\n${holds.toLocaleString("en")} expired holds on ${ACCOUNTS} accounts, ${runs} interleaved run(s)`);
  for (const row of rows) console.log(row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  "));
  console.log(`ratio sweep / raw: ${(sweep / raw).toFixed(2)}× (raw is ${(raw / sweep).toFixed(1)}× faster)`);
} finally {
  await pool.end();
  await dropDatabase(server.url, name);
  await server.release();
}
