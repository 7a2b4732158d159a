/**
 * The credits invariants as queries: each returns the rows that break one. An empty list means
 * balance = sum(ledger), held = sum(active holds) = sum(ledger held changes), no negative
 * available, and every resolved hold has exactly one matching resolution entry. Used by the
 * tests after concurrent runs; safe to run against production (read-only, full scans).
 */
import { type Kysely, sql } from "kysely";

export interface InvariantViolation {
  invariant: string;
  /** The offending account or hold, with the numbers that disagree. */
  row: Record<string, unknown>;
}

const CHECKS: { invariant: string; query: ReturnType<typeof sql> }[] = [
  {
    invariant: "available = balance - held >= 0",
    query: sql`select id, balance, held from credits.accounts where balance < 0 or held < 0 or balance - held < 0`,
  },
  {
    invariant: "balance = sum(ledger amount), held = sum(ledger held_change)",
    query: sql`
      select a.id, a.balance, a.held, l.amount_sum, l.held_sum
        from credits.accounts a
        left join (select account_id, sum(amount) as amount_sum, sum(held_change) as held_sum
                     from credits.ledger_entries group by account_id) l on l.account_id = a.id
       where a.balance <> coalesce(l.amount_sum, 0) or a.held <> coalesce(l.held_sum, 0)`,
  },
  {
    invariant: "held = sum(active holds)",
    query: sql`
      select a.id, a.held, coalesce(h.active_sum, 0) as active_sum
        from credits.accounts a
        left join (select account_id, sum(amount) as active_sum from credits.holds
                    where state = 'active' group by account_id) h on h.account_id = a.id
       where a.held <> coalesce(h.active_sum, 0)`,
  },
  {
    invariant: "each hold has one placement and, once resolved, exactly one resolution matching its state",
    query: sql`
      select h.id, h.state, h.amount, h.captured_amount, l.placements, l.resolutions, l.kinds, l.charged
        from credits.holds h
        left join (select hold_id,
                          count(*) filter (where kind = 'hold') as placements,
                          count(*) filter (where kind <> 'hold') as resolutions,
                          string_agg(kind, ',' order by id) filter (where kind <> 'hold') as kinds,
                          -sum(amount) as charged
                     from credits.ledger_entries where hold_id is not null group by hold_id) l on l.hold_id = h.id
       where coalesce(l.placements, 0) <> 1
          or coalesce(l.resolutions, 0) <> case when h.state = 'active' then 0 else 1 end
          or (h.state <> 'active' and l.kinds <> case h.state when 'captured' then 'capture'
                                                              when 'released' then 'release' else 'expire' end)
          or coalesce(l.charged, 0) <> coalesce(h.captured_amount, 0)`,
  },
];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function findInvariantViolations(db: Kysely<any>): Promise<InvariantViolation[]> {
  const violations: InvariantViolation[] = [];
  for (const check of CHECKS) {
    const { rows } = await check.query.execute(db);
    for (const row of rows) violations.push({ invariant: check.invariant, row: row as Record<string, unknown> });
  }
  return violations;
}
