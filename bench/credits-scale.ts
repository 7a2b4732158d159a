/**
 * Credits at scale (issue #11), every variant interleaved in one run, medians and ratios:
 *
 *   place    place_hold with the expiry timer vs no expiry work vs a job per hold (0003)
 *   sweep    the sweep vs one raw UPDATE … RETURNING over the same due holds (fresh clone each)
 *   capture  capture latency of holds that are not due: no sweep, a sweep of the same holds, and
 *            a sweep in another database (shares the machine, not the locks)
 *   timer    100 holds due within a minute, a worker draining a backlog of unrelated jobs
 *   per-hold the same with 0003's job per hold instead of the timer (waits for the backlog)
 *
 *   npx node bench/credits-scale.ts [--holds 200000] [--accounts 10000] [--rounds 3]
 *     [--calls 5000] [--batch 1000,5000] [--max-accounts 50] [--captures 2000]
 *     [--backlog 300000] [--parts place,sweep,capture,timer]        (add per-hold to compare)
 *
 * Half the holds are due. Uses DATABASE_URL's server (or the embedded one); scratch databases
 * are named pgjobs_bench_* and dropped at the end. Acceptance (README): --holds 1000000.
 */
import os from "node:os";
import { parseArgs } from "node:util";
import { sql } from "kysely";
import { loadConfig } from "../src/config.ts";
import { resolveDatabase } from "../src/db/database.ts";
import { createLogger } from "../src/logger.ts";
import { createPlaceVariants, measurePlaceHold, summarizePlace } from "./credits/place-hold.ts";
import { measurePunctuality, type Punctuality, summarizePunctuality } from "./credits/punctuality.ts";
import { dropDatabase } from "../src/testing/test-database.ts";
import { createMigrated, populate } from "./credits/setup.ts";
import { median, note, printTable } from "./credits/stats.ts";
import { type SweepBeside, summarizeCaptures, sweepShapes, timeCaptures, timeSweep } from "./credits/sweep.ts";

const { values: args } = parseArgs({
  options: {
    holds: { type: "string", default: "200000" },
    accounts: { type: "string", default: "10000" },
    rounds: { type: "string", default: "3" },
    calls: { type: "string", default: "5000" },
    batch: { type: "string", default: "1000,5000" },
    "max-accounts": { type: "string", default: "50" },
    captures: { type: "string", default: "2000" },
    backlog: { type: "string", default: "300000" },
    parts: { type: "string", default: "place,sweep,capture,timer" },
  },
});
const holds = Number(args.holds);
const accounts = Number(args.accounts);
const rounds = Number(args.rounds);
const batchSizes = args.batch.split(",").map(Number);
const maxAccounts = Number(args["max-accounts"]);
const parts = new Set(args.parts.split(","));
const due = holds / 2;
if (holds % (2 * accounts) !== 0) throw new Error("--holds must be a multiple of 2 × --accounts (half of them due)");

const config = loadConfig();
const logger = createLogger({ logLevel: "warn", logFormat: "json" });
const silent = createLogger({ logLevel: "silent", logFormat: "json" });
const server = await resolveDatabase(config, logger);

const template = await createMigrated(server.url, "template", silent);
try {
  const { rows } = await sql<{ version: string; autovacuum: string }>`
    select current_setting('server_version') as version, current_setting('autovacuum') as autovacuum`.execute(
    template.db,
  );
  console.log(
    `# credits-scale, ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ` +
      `PostgreSQL ${rows[0]?.version} (autovacuum ${rows[0]?.autovacuum}; VACUUM ANALYZE before each measurement), ` +
      `${holds.toLocaleString("en")} holds on ${accounts.toLocaleString("en")} accounts (half due), ${rounds} interleaved rounds`,
  );

  if (parts.has("place")) {
    await createPlaceVariants(template);
    const results = await measurePlaceHold(template, { calls: Number(args.calls), rounds });
    printTable(`place_hold, ${args.calls} holds per variant per round, one connection`, summarizePlace(results));
  }

  if (parts.has("sweep") || parts.has("capture")) {
    note(`generating ${holds} holds`);
    await template.db.connection().execute(async (connection) => {
      await sql`truncate graphile_worker._private_jobs`.execute(connection);
      await sql`set session_replication_role = replica`.execute(connection); // past the truncate guards
      await sql`truncate credits.ledger_entries, credits.holds, credits.accounts restart identity`.execute(connection);
      await sql`set session_replication_role = default`.execute(connection);
    });
    await populate(template.db, holds, accounts);
  }
  await template.close(); // a template must have no connections

  if (parts.has("sweep")) {
    const shapes = sweepShapes(batchSizes, maxAccounts);
    const timings = shapes.map(() => [] as number[]);
    for (let round = 0; round < rounds; round++) {
      for (let offset = 0; offset < shapes.length; offset++) {
        const index = (offset + round) % shapes.length;
        const shape = shapes[index];
        if (!shape) continue;
        const rate = await timeSweep(server.url, template.name, shape, due);
        timings[index]?.push(rate);
        note(`sweep round ${round + 1}: ${shape.label}: ${Math.round(rate)} holds/s`);
      }
    }
    const raw = median(timings[0] ?? []);
    printTable(`Expiring ${due.toLocaleString("en")} due holds (fresh clone each run)`, [
      ["way", "holds/s (median)", "× raw UPDATE", "runs (holds/s)"],
      ...shapes.map((shape, index) => [
        shape.label,
        Math.round(median(timings[index] ?? [])).toLocaleString("en"),
        (median(timings[index] ?? []) / raw).toFixed(2),
        (timings[index] ?? []).map((rate) => Math.round(rate).toLocaleString("en")).join(", "),
      ]),
    ]);
  }

  if (parts.has("capture")) {
    const runs: Record<SweepBeside, number[][]> = { none: [], "same database": [], "another database": [] };
    const conditions = Object.keys(runs) as SweepBeside[];
    const options = { count: Number(args.captures), batchSize: batchSizes[0] ?? 1000, maxAccounts };
    for (let round = 0; round < rounds; round++) {
      for (let offset = 0; offset < conditions.length; offset++) {
        const beside = conditions[(offset + round) % conditions.length] as SweepBeside;
        const samples = await timeCaptures(server.url, template.name, { ...options, beside });
        runs[beside].push(samples);
        note(`capture round ${round + 1}, sweep: ${beside}: ${samples.length} captures`);
      }
    }
    printTable(
      `Captures of holds not due, one connection, beside a sweep (batch ${options.batchSize}, ≤ ${maxAccounts} accounts)`,
      summarizeCaptures(runs),
    );
  }

  const punctuality: Punctuality[] = [];
  for (const design of ["expiry timer", "job per hold (0003)"] as const) {
    if (!parts.has(design === "expiry timer" ? "timer" : "per-hold")) continue;
    punctuality.push(
      await measurePunctuality(server.url, config, silent, {
        design,
        backlog: Number(args.backlog),
        holds: 100,
        windowMs: 60_000,
        giveUpMs: 15 * 60_000,
      }),
    );
  }
  if (punctuality.length > 0) {
    printTable(
      `100 holds due within a minute, worker (concurrency ${config.concurrency}, poll ${config.pollIntervalMs} ms) draining ${Number(args.backlog).toLocaleString("en")} no-op jobs`,
      summarizePunctuality(punctuality),
    );
  }
} finally {
  await template.close().catch(() => undefined); // already closed once the template is cloned
  await dropDatabase(server.url, template.name);
  await server.release();
}
