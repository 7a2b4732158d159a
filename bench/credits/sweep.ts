/**
 * The sweep against one raw `UPDATE … RETURNING` over the same due holds, each in a fresh clone of
 * the same population; and captures of holds that are not due, timed with and without a sweep
 * running beside them. Shapes compared: batch sizes, the ledger's foreign keys put back (what
 * 0004 replaced with a per-statement check), and 0003's batch statement (holds joined to accounts,
 * locked together, a thousand accounts per batch).
 */
import type { CreditsDatabase } from "../../src/app/credits/credits.tables.ts";
import { type Kysely, sql } from "kysely";
import { expireDueHolds } from "../../src/app/credits/expire-holds.service.ts";
import { cloneOf, drop, type Scratch } from "./setup.ts";
import { median, percentile } from "./stats.ts";

export interface SweepShape {
  label: string;
  kind: "raw" | "sweep" | "sweep-0003";
  batchSize?: number;
  maxAccounts?: number;
  foreignKeys?: boolean;
}

export function sweepShapes(batchSizes: number[], maxAccounts: number): SweepShape[] {
  return [
    { label: "raw UPDATE … RETURNING (no ledger, no accounts, one transaction)", kind: "raw" },
    ...batchSizes.map((batchSize) => ({
      label: `sweep, batch ${batchSize}, ≤ ${maxAccounts} accounts`,
      kind: "sweep" as const,
      batchSize,
      maxAccounts,
    })),
    {
      label: `sweep, batch ${batchSizes[0]}, ledger foreign keys put back`,
      kind: "sweep",
      batchSize: batchSizes[0],
      maxAccounts,
      foreignKeys: true,
    },
    { label: "0003's sweep statement, batch 1000", kind: "sweep-0003", batchSize: 1000 },
  ];
}

const SWEEP_0003 = `
create function credits.bench_expire_holds_batch_0003(batch_size integer)
returns integer language plpgsql set search_path = pg_catalog, pg_temp as $$
declare n integer;
begin
  with due as (
    select h.id, h.account_id, h.amount from credits.holds h join credits.accounts a on a.id = h.account_id
     where h.state = 'active' and h.expires_at <= now() order by h.expires_at limit batch_size
       for update of a, h skip locked
  ), expired_holds as (
    update credits.holds h set state = 'expired', resolved_at = now() from due where h.id = due.id
    returning h.id, h.account_id, h.amount
  ), entries as (
    insert into credits.ledger_entries (account_id, kind, amount, held_change, hold_id)
    select e.account_id, 'expire', 0, -e.amount, e.id from expired_holds e
  ), per_account as (
    update credits.accounts a set held = a.held - t.released, updated_at = now()
      from (select e.account_id, sum(e.amount) as released from expired_holds e group by e.account_id) t
     where a.id = t.account_id returning a.id
  )
  select count(*) into n from expired_holds;
  return n;
end $$`;

const FOREIGN_KEYS = `
drop trigger ledger_entries_references on credits.ledger_entries;
alter table credits.ledger_entries
  add constraint ledger_entries_account_id_fkey foreign key (account_id) references credits.accounts (id) not valid,
  add constraint ledger_entries_hold_id_fkey foreign key (hold_id) references credits.holds (id) not valid`;

/** Expires every due hold of a fresh clone with `shape`; returns holds/s. */
export async function timeSweep(serverUrl: string, template: string, shape: SweepShape, due: number): Promise<number> {
  const clone = await cloneOf(serverUrl, template, "sweep");
  try {
    if (shape.foreignKeys) await sql.raw(FOREIGN_KEYS).execute(clone.db);
    if (shape.kind === "sweep-0003") await sql.raw(SWEEP_0003).execute(clone.db);
    const started = performance.now();
    let expired = 0;
    if (shape.kind === "raw") {
      const { rows } = await sql<{ id: string }>`
        update credits.holds set state = 'expired', resolved_at = now()
         where state = 'active' and expires_at <= now() returning id`.execute(clone.db);
      expired = rows.length;
    } else if (shape.kind === "sweep") {
      const outcome = await expireDueHolds(clone.db as unknown as Kysely<CreditsDatabase>, {
        batchSize: shape.batchSize,
        maxAccounts: shape.maxAccounts,
        maxBatches: Number.MAX_SAFE_INTEGER,
      });
      expired = outcome.expired;
    } else {
      for (;;) {
        const { rows } = await sql<{ n: number }>`
          select credits.bench_expire_holds_batch_0003(${shape.batchSize}::int) as n`.execute(clone.db);
        expired += rows[0]?.n ?? 0;
        if ((rows[0]?.n ?? 0) < (shape.batchSize ?? 0)) break;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    if (expired !== due) throw new Error(`${shape.label} expired ${expired} of ${due} due holds`);
    return due / seconds;
  } finally {
    await drop(serverUrl, clone);
  }
}

export type SweepBeside = "none" | "same database" | "another database";

/**
 * Captures `count` holds that are not due, one at a time on one connection, timing each: with
 * no sweep, beside expireDueHolds on the same holds (captures stop when it ends), or beside a
 * sweep of an identical clone, which shares the machine (CPU, WAL, disk) but no lock: the
 * difference between the last two is what the sweep's locks cost captures.
 */
export async function timeCaptures(
  serverUrl: string,
  template: string,
  options: { count: number; beside: SweepBeside; batchSize: number; maxAccounts: number },
): Promise<number[]> {
  const clone = await cloneOf(serverUrl, template, "capture");
  const swept = options.beside === "another database" ? await cloneOf(serverUrl, template, "capture") : clone;
  try {
    const { rows } = await sql<{ id: string }>`
      select id from credits.holds where state = 'active' and expires_at > now() + interval '1 hour'
       order by md5(id::text) limit ${options.count}`.execute(clone.db);
    let sweeping = options.beside !== "none";
    const sweep = sweeping
      ? expireDueHolds(swept.db as unknown as Kysely<CreditsDatabase>, {
          batchSize: options.batchSize,
          maxAccounts: options.maxAccounts,
          maxBatches: Number.MAX_SAFE_INTEGER,
        }).then(() => {
          sweeping = false;
        })
      : Promise.resolve();
    const samples = await captureEach(clone, rows, () => options.beside === "none" || sweeping);
    await sweep;
    return samples;
  } finally {
    await drop(serverUrl, clone);
    if (swept !== clone) await drop(serverUrl, swept);
  }
}

async function captureEach(clone: Scratch, holds: { id: string }[], go: () => boolean): Promise<number[]> {
  const client = await clone.pool.connect();
  const samples: number[] = [];
  try {
    for (const hold of holds) {
      if (!go()) break;
      const started = performance.now();
      await client.query({ name: "capture", text: "select credits.capture_hold($1)", values: [hold.id] });
      samples.push(performance.now() - started);
    }
  } finally {
    client.release();
  }
  return samples;
}

export function summarizeCaptures(runs: Record<SweepBeside, number[][]>): string[][] {
  const p99 = (beside: SweepBeside) => median(runs[beside].map((samples) => percentile(samples, 99)));
  const row = (label: string, beside: SweepBeside) => [
    label,
    String(median(runs[beside].map((samples) => samples.length))),
    median(runs[beside].map((samples) => percentile(samples, 50))).toFixed(2),
    p99(beside).toFixed(2),
    (p99(beside) / p99("none")).toFixed(2),
    median(runs[beside].map((samples) => Math.max(...samples))).toFixed(1),
  ];
  return [
    ["captures of holds not due", "captures per run", "p50 ms", "p99 ms", "p99 ÷ no sweep", "max ms"],
    row("no sweep", "none"),
    row("sweep of the same holds", "same database"),
    row("sweep of a copy in another database (no shared lock)", "another database"),
  ];
}
