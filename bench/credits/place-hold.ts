/**
 * What expiry costs a hold: credits.place_hold as it is (the expiry timer), the same function
 * with no expiry work at all, and with a job per hold (what migration 0003 did). The variants
 * are made from the live function's text, so they differ from it only in that block.
 */
import { sql } from "kysely";
import type pg from "pg";
import type { Scratch } from "./setup.ts";
import { vacuumAnalyze } from "./setup.ts";
import { median, note } from "./stats.ts";

export const PLACE_VARIANTS = ["expiry timer (place_hold)", "no expiry work", "job per hold (0003)"] as const;
export type PlaceVariant = (typeof PLACE_VARIANTS)[number];

// Same function name in other schemas: the body refers to its arguments as place_hold.<name>.
// The operation itself, behind credits.place_hold's caller check (migrations/0005), so the
// variants differ in their expiry work only.
export const FUNCTION: Record<PlaceVariant, string> = {
  "expiry timer (place_hold)": "credits_private.place_hold",
  "no expiry work": "bench_no_job.place_hold",
  "job per hold (0003)": "bench_job_per_hold.place_hold",
};

const TIMER_BLOCK = /\n {2}-- Usually the timer is armed[\s\S]*?\n {2}end if;\n(?= {2}return hold;\nend;)/;
const JOB_PER_HOLD = `
  perform graphile_worker.add_job('credits__expire_hold', json_build_object('holdId', hold.id),
    run_at => hold.expires_at, job_key => 'credits:hold:' || hold.id, max_attempts => 5);
`;

export async function createPlaceVariants(scratch: Scratch): Promise<void> {
  const { rows } = await sql<{ definition: string }>`
    select pg_get_functiondef('credits_private.place_hold'::regproc) as definition`.execute(scratch.db);
  const definition = rows[0]?.definition ?? "";
  if (!TIMER_BLOCK.test(definition)) {
    throw new Error(
      "credits_private.place_hold no longer has the timer block this bench cuts out; update bench/credits",
    );
  }
  const variant = (name: string, block: string) =>
    definition.replace("credits_private.place_hold(", `${name}(`).replace(TIMER_BLOCK, block);
  await sql`create schema bench_no_job`.execute(scratch.db);
  await sql`create schema bench_job_per_hold`.execute(scratch.db);
  await sql.raw(variant(FUNCTION["no expiry work"], "\n")).execute(scratch.db);
  await sql.raw(variant(FUNCTION["job per hold (0003)"], JOB_PER_HOLD)).execute(scratch.db);
  await sql`
    insert into credits.accounts (id, balance) select 'acct-' || a, 1000000000000 from generate_series(0, 999) a`.execute(
    scratch.db,
  );
  await sql`
    insert into credits.ledger_entries (account_id, kind, amount, idempotency_key)
    select id, 'deposit', balance, 'opening' from credits.accounts`.execute(scratch.db);
  await vacuumAnalyze(scratch.db);
}

export interface PlaceResult {
  perCall: number[]; // holds/s, one per round
  bulk: number[];
  jobsPerThousand: number[];
  jobBytesPerHold: number[];
}

const CHUNKS = 10;

/**
 * Rounds of `calls` holds per variant, placed two ways: one statement per hold on one connection
 * (a client's round trip and a commit per hold, like pgbench), and in one statement per chunk (the
 * server's own cost). Within a round the variants take turns chunk by chunk (calls ÷ 10 each,
 * order rotating), so slow and fast moments of this shared machine fall on all of them alike.
 * Each round starts from VACUUM ANALYZE.
 */
export async function measurePlaceHold(
  scratch: Scratch,
  options: { calls: number; rounds: number },
): Promise<Record<PlaceVariant, PlaceResult>> {
  const results = Object.fromEntries(
    PLACE_VARIANTS.map((variant) => [variant, { perCall: [], bulk: [], jobsPerThousand: [], jobBytesPerHold: [] }]),
  ) as unknown as Record<PlaceVariant, PlaceResult>;
  const client = await scratch.pool.connect();
  const chunk = Math.max(1, Math.floor(options.calls / CHUNKS));
  let sequence = 0;
  // Expiries an hour out, later for later holds: the usual shape (a fixed lifetime).
  const placeOne = (fn: string) => {
    sequence += 1;
    return client.query({
      name: `place-${fn}`,
      text: `select id from ${fn}($1, 5, now() + interval '1 hour' + $2 * interval '1 millisecond', $3)`,
      values: [`acct-${sequence % 1000}`, sequence, `call-${sequence}`],
    });
  };
  const placeMany = async (fn: string, count: number) => {
    await client.query(
      `select count(${fn}('acct-' || (i % 1000), 5, now() + interval '1 hour' + ($1 + i) * interval '1 millisecond',
                          'bulk-' || ($1 + i)))
         from generate_series(1, $2::int) i`,
      [sequence, count],
    );
    sequence += count;
  };
  try {
    // Warm-up, not recorded: plans cached while the tables are empty scan them whole as they
    // grow (autovacuum is off here), so first give every variant rows and statistics.
    for (const variant of PLACE_VARIANTS) await placeMany(FUNCTION[variant], options.calls);
    for (let round = 0; round < options.rounds; round++) {
      await vacuumAnalyze(scratch.db);
      const spent = new Map<PlaceVariant, { perCall: number; bulk: number; jobs: number; bytes: number }>(
        PLACE_VARIANTS.map((variant) => [variant, { perCall: 0, bulk: 0, jobs: 0, bytes: 0 }]),
      );
      for (let turn = 0; turn < CHUNKS; turn++) {
        for (let index = 0; index < PLACE_VARIANTS.length; index++) {
          const variant = PLACE_VARIANTS[(index + turn + round) % PLACE_VARIANTS.length] as PlaceVariant;
          const fn = FUNCTION[variant];
          const tally = spent.get(variant) ?? { perCall: 0, bulk: 0, jobs: 0, bytes: 0 };
          const before = await queue(client);
          let started = performance.now();
          for (let call = 0; call < chunk; call++) await placeOne(fn);
          tally.perCall += performance.now() - started;
          started = performance.now();
          await placeMany(fn, chunk);
          tally.bulk += performance.now() - started;
          const after = await queue(client);
          tally.jobs += after.jobs - before.jobs;
          tally.bytes += after.bytes - before.bytes;
        }
      }
      for (const [variant, tally] of spent) {
        const placed = chunk * CHUNKS;
        results[variant].perCall.push(placed / (tally.perCall / 1000));
        results[variant].bulk.push(placed / (tally.bulk / 1000));
        results[variant].jobsPerThousand.push((tally.jobs * 1000) / (2 * placed));
        results[variant].jobBytesPerHold.push(tally.bytes / (2 * placed));
        note(
          `place_hold round ${round + 1}: ${variant}: ${Math.round(placed / (tally.perCall / 1000))} holds/s a call each`,
        );
      }
    }
  } finally {
    client.release();
  }
  return results;
}

async function queue(client: pg.ClientBase): Promise<{ jobs: number; bytes: number }> {
  const { rows } = await client.query<{ jobs: string; bytes: string }>(
    "select (select count(*) from graphile_worker._private_jobs) as jobs, pg_total_relation_size('graphile_worker._private_jobs') as bytes",
  );
  return { jobs: Number(rows[0]?.jobs), bytes: Number(rows[0]?.bytes) };
}

export function summarizePlace(results: Record<PlaceVariant, PlaceResult>): string[][] {
  const base = results["no expiry work"];
  return [
    [
      "place_hold variant",
      "holds/s, a call each",
      "× no expiry work",
      "holds/s, bulk",
      "× no expiry work",
      "jobs added per 1,000 holds",
      "queue bytes per hold",
    ],
    ...PLACE_VARIANTS.map((variant) => {
      const result = results[variant];
      return [
        variant,
        Math.round(median(result.perCall)).toLocaleString("en"),
        (median(result.perCall) / median(base.perCall)).toFixed(2),
        Math.round(median(result.bulk)).toLocaleString("en"),
        (median(result.bulk) / median(base.bulk)).toFixed(2),
        median(result.jobsPerThousand).toFixed(1),
        Math.round(median(result.jobBytesPerHold)).toLocaleString("en"),
      ];
    }),
  ];
}
