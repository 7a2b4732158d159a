/**
 * The expiry timer with a real worker running: resolved holds leave no expiry work behind, and
 * holds are expired on time (deadline waits only; lateness is measured in bench/credits-scale.ts).
 */
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { captureHold, deposit, expireDueHolds, findInvariantViolations, placeHold } from "../src/app/credits/index.ts";
import { creditJobs, placeHoldsInBulk, timerState, untilDue } from "./support/credits.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();
const fromNow = (ms: number) => new Date(Date.now() + ms);

describe("with a worker running", () => {
  it("10,000 holds resolved by capture, release and the sweep leave no expiry work behind; a 2-second hold then expires within 5 s", async () => {
    const { db } = database();
    await placeHoldsInBulk(db, { prefix: "bulk", accounts: 100, count: 10_000, lifetime: "2 seconds" });
    // A third each: captured, released, and (once due) expired by the sweep.
    await sql`select credits.capture_hold(id) from credits.holds where account_id like 'bulk-%' and id % 3 = 0`.execute(
      db,
    );
    await sql`select credits.release_hold(id) from credits.holds where account_id like 'bulk-%' and id % 3 = 1`.execute(
      db,
    );
    await untilDue(db, "bulk");
    expect(await expireDueHolds(db)).toMatchObject({ stoppedBy: "nothing_left" });
    const states = await sql<{ state: string; n: string }>`
      select state, count(*) as n from credits.holds where account_id like 'bulk-%' group by state order by state`.execute(
      db,
    );
    const counts = Object.fromEntries(states.rows.map((row) => [row.state, Number(row.n)]));
    expect(Object.keys(counts)).toEqual(["captured", "expired", "released"]);
    expect(Object.values(counts).every((count) => count === 3333 || count === 3334)).toBe(true);
    // No job per hold, resolved or not: at most the one timer job, armed for what was the earliest hold.
    const jobs = await creditJobs(db);
    expect(jobs.filter((job) => job.task !== "credits__expiry_timer")).toEqual([]);
    expect(jobs.length).toBeLessThanOrEqual(1);

    await startWorker(database());
    const placedAt = Date.now();
    await deposit(db, { accountId: "on-time", amount: 10, idempotencyKey: "opening" });
    const hold = await placeHold(db, {
      accountId: "on-time",
      amount: 4,
      expiresAt: fromNow(2000),
      idempotencyKey: "a",
    });
    const expired = await waitFor(
      "the 2-second hold to be expired by the timer",
      async () => {
        const row = await db
          .selectFrom("credits.holds")
          .select(["state", "resolved_at", "expires_at"])
          .where("id", "=", hold.id)
          .executeTakeFirstOrThrow();
        return row.state === "expired" ? row : undefined;
      },
      { timeoutMs: 5000 - (Date.now() - placedAt) },
    );
    expect(+(expired.resolved_at ?? 0)).toBeGreaterThanOrEqual(+expired.expires_at);
    expect(await findInvariantViolations(db)).toEqual([]);
    // Once nothing is active the timer disarms: an idle system has no job in the queue.
    await waitFor("the timer to disarm", async () => ((await creditJobs(db)).length === 0 ? true : undefined));
    expect(await timerState(db)).toEqual({ armedAt: null, jobId: null });
  });

  it("holds expiring a few hundred milliseconds apart are all expired, none before its time", async () => {
    const { db } = database();
    await deposit(db, { accountId: "stream", amount: 100, idempotencyKey: "opening" });
    const holds = [];
    for (let index = 0; index < 12; index++) {
      holds.push(
        await placeHold(db, {
          accountId: "stream",
          amount: 1,
          expiresAt: fromNow(300 + index * 250),
          idempotencyKey: `s${index}`,
        }),
      );
    }
    await captureHold(db, holds[5]?.id ?? "", 1);
    await waitFor("every stream hold to be resolved", async () => {
      const { rows } = await sql<{ active: string }>`
        select count(*) as active from credits.holds where account_id = 'stream' and state = 'active'`.execute(db);
      return Number(rows[0]?.active) === 0 ? true : undefined;
    });
    const { rows } = await sql<{ early: string; expired: string }>`
      select count(*) filter (where state = 'expired' and resolved_at < expires_at) as early, count(*) filter (where state = 'expired') as expired
        from credits.holds where account_id = 'stream'`.execute(db);
    expect(rows[0]).toEqual({ early: "0", expired: "11" });
    expect(await findInvariantViolations(db)).toEqual([]);
  });
});
