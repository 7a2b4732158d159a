/**
 * The randomized concurrency run at scale: 100,000 holds on 500 accounts (made set-based, as if
 * they predated this code: 30% already due, 40% falling due during the run, 30% a day away),
 * then four connections capture, release, place and expire through the real functions while the
 * sweep loops and a worker runs the expiry timer. Every check is plain SQL over the tables, not
 * the functions under test. A wrong lock order shows up as a deadlock (40P01) and fails the run.
 */
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import {
  captureHold,
  deposit,
  expireDueHolds,
  expireHold,
  findInvariantViolations,
  getExpiryLag,
  HoldAlreadyResolvedError,
  IdempotencyConflictError,
  InsufficientCreditError,
  placeHold,
  rearmExpiryTimer,
  releaseHold,
} from "../src/app/credits/index.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

const SEED = Date.now() % 1_000_000; // printed in the test name; put a failing run's seed here to replay it
const HOLDS = 100_000;
const ACCOUNTS = 500;
const OPENING = 1_000_000;
const CONNECTIONS = 4;
const OPERATIONS_PER_CONNECTION = 500;
const DUE_WITHIN_MS = 12_000;

function random(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function seedHolds(): Promise<void> {
  const { db } = database();
  await sql`
    insert into credits.accounts (id, balance) select 'scale-' || a, ${OPENING}::bigint from generate_series(0, ${ACCOUNTS - 1}::int) a`.execute(
    db,
  );
  await sql`
    insert into credits.ledger_entries (account_id, kind, amount, idempotency_key)
    select id, 'deposit', balance, 'opening' from credits.accounts where id like 'scale-%'`.execute(db);
  await sql`
    insert into credits.holds (account_id, amount, expires_at, idempotency_key)
    select 'scale-' || (i % ${ACCOUNTS}::int), 1 + i % 5,
           case when i % 10 < 3 then now() - (i % 3600) * interval '1 second'
                when i % 10 < 7 then now() + ((i * 7919) % ${DUE_WITHIN_MS}::int) * interval '1 millisecond'
                else now() + interval '1 day' end,
           'seed-' || i
      from generate_series(1, ${HOLDS}::int) i`.execute(db);
  await sql`
    insert into credits.ledger_entries (account_id, kind, amount, held_change, hold_id)
    select account_id, 'hold', 0, amount, id from credits.holds order by id`.execute(db);
  await sql`
    update credits.accounts a set held = t.held
      from (select account_id, sum(amount) as held from credits.holds group by account_id) t
     where a.id = t.account_id`.execute(db);
  await sql`analyze credits.holds`.execute(db);
  await sql`analyze credits.accounts`.execute(db);
  await sql`analyze credits.ledger_entries`.execute(db);
  await rearmExpiryTimer(db); // what migration 0004 does for holds that predate it
}

describe(`credits at scale under concurrency (seed ${SEED})`, () => {
  it("keeps every invariant with 100,000 holds, four connections, the sweep and the expiry timer", async () => {
    const { db } = database();
    await seedHolds();
    const { rows: bounds } = await sql<{ min: string; max: string }>`
      select min(id) as min, max(id) as max from credits.holds`.execute(db);
    const firstId = Number(bounds[0]?.min);
    const lastId = Number(bounds[0]?.max);
    let deposited = ACCOUNTS * OPENING;
    const captured = new Map<string, number>();
    const placed: string[] = [];
    const counts: Record<string, number> = {};
    const count = (what: string) => (counts[what] = (counts[what] ?? 0) + 1);
    const expected = (error: unknown) => {
      if (
        error instanceof InsufficientCreditError ||
        error instanceof HoldAlreadyResolvedError ||
        error instanceof IdempotencyConflictError
      ) {
        count(`refused: ${error.name}`);
        return;
      }
      throw error;
    };

    await startWorker(database(), { concurrency: 2 });
    const connection = async (index: number) => {
      const next = random(SEED * 31 + index);
      const anyHold = () =>
        next() < 0.8 || placed.length === 0
          ? String(firstId + Math.floor(next() * (lastId - firstId + 1)))
          : (placed[Math.floor(next() * placed.length)] as string);
      for (let op = 0; op < OPERATIONS_PER_CONNECTION; op++) {
        const roll = next();
        const accountId = `scale-${Math.floor(next() * ACCOUNTS)}`;
        try {
          if (roll < 0.3) {
            const holdId = anyHold();
            const result = await captureHold(db, holdId, next() < 0.5 ? undefined : 1);
            if (!captured.has(holdId)) captured.set(holdId, result.capturedAmount ?? 0);
            count("capture");
          } else if (roll < 0.5) {
            await releaseHold(db, anyHold());
            count("release");
          } else if (roll < 0.75) {
            // Some expire within the run (the timer's job), some in an hour; some arm the timer earlier.
            const lifetime = next() < 0.6 ? 50 + Math.floor(next() * 4000) : 3_600_000;
            const hold = await placeHold(db, {
              accountId,
              amount: 1 + Math.floor(next() * 5),
              expiresAt: new Date(Date.now() + lifetime),
              idempotencyKey: `run-${index}-${op}`,
            });
            placed.push(hold.id);
            count("hold");
          } else if (roll < 0.85) {
            await expireHold(db, anyHold());
            count("expire");
          } else if (roll < 0.93) {
            // The app's own transaction holding the account (a top-up) when it resolves a hold of it.
            const holdId = anyHold();
            const { rows } = await sql<{ account_id: string }>`
              select account_id from credits.holds where id = ${holdId}::bigint`.execute(db);
            const owner = rows[0]?.account_id as string;
            await db.transaction().execute(async (trx) => {
              await deposit(trx, { accountId: owner, amount: 5, idempotencyKey: `topup-${index}-${op}` });
              await releaseHold(trx, holdId);
            });
            deposited += 5;
            count("top-up and release");
          } else {
            await deposit(db, { accountId, amount: 10, idempotencyKey: `d-${index}-${op}` });
            deposited += 10;
            count("deposit");
          }
        } catch (error) {
          expected(error);
        }
      }
    };

    let running = true;
    let sweeps = 0;
    const sweeper = async () => {
      while (running) {
        await expireDueHolds(db);
        sweeps += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    let checkpoints = 0;
    const checker = async () => {
      while (running) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        expect(await findInvariantViolations(db)).toEqual([]);
        checkpoints += 1;
      }
    };
    const background = Promise.all([sweeper(), checker()]);
    try {
      await Promise.all(Array.from({ length: CONNECTIONS }, (_, index) => connection(index)));
    } finally {
      running = false;
      await background;
    }

    // The sweep has stopped: from here the timer alone must expire what falls due (every hold
    // placed or seeded to expire within the run; the rest are an hour or a day away).
    await waitFor(
      "the expiry timer to expire every hold due within the run",
      async () => {
        const { rows } = await sql<{ left: string }>`
          select count(*) as left from credits.holds where state = 'active' and expires_at < now() + interval '5 minutes'`.execute(
          db,
        );
        return Number(rows[0]?.left) === 0 ? true : undefined;
      },
      { timeoutMs: DUE_WITHIN_MS + 30_000, intervalMs: 250 },
    );

    expect(await findInvariantViolations(db)).toEqual([]);
    const { rows } = await sql<{ balance: string; early: string; resolutions: string; twice: string }>`
      select (select sum(balance) from credits.accounts) as balance,
             (select count(*) from credits.holds where state = 'expired' and resolved_at < expires_at) as early,
             (select count(*) from credits.ledger_entries where kind in ('capture', 'release', 'expire')) as resolutions,
             (select count(*) from (select hold_id from credits.ledger_entries where kind <> 'hold' and kind <> 'deposit'
                                     group by hold_id having count(*) > 1) t) as twice`.execute(db);
    const totals = rows[0];
    const capturedTotal = [...captured.values()].reduce((sum, amount) => sum + amount, 0);
    expect(Number(totals?.balance)).toBe(deposited - capturedTotal);
    expect(Number(totals?.early)).toBe(0); // no hold expired before its time
    expect(Number(totals?.twice)).toBe(0); // no hold resolved twice
    const { rows: resolved } = await sql<{ n: string }>`
      select count(*) as n from credits.holds where state <> 'active'`.execute(db);
    expect(Number(totals?.resolutions)).toBe(Number(resolved[0]?.n)); // one resolution per resolved hold
    // Every hold still active is a day or an hour away, and the timer is armed for the earliest.
    expect((await getExpiryLag(db)).dueHolds).toBe(0);
    const { rows: earliest } = await sql<{ at: Date }>`
      select min(expires_at) as at from credits.holds where state = 'active'`.execute(db);
    // (A hold expiring within the resolution, 1 s, before the armed time does not move it.)
    await waitFor("the timer to be armed for the earliest active hold", async () => {
      const armed = (await getExpiryLag(db)).timerArmedAt;
      return armed && +armed <= +(earliest[0]?.at ?? 0) + 1000 ? true : undefined;
    });
    expect(sweeps).toBeGreaterThan(0);
    expect(checkpoints).toBeGreaterThan(0);
    console.log(JSON.stringify({ seed: SEED, checkpoints, sweeps, counts }));
  });
});
