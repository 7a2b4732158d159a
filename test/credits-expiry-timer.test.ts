/**
 * The expiry timer: one job for all holds, armed for the earliest one, moved earlier only when a
 * new hold expires first, re-armed after each run. Here: what place_hold does to the queue and
 * the races with a run under way (no worker; runs are driven by hand). With a worker running:
 * credits-expiry-on-time.test.ts.
 */
import { sql } from "kysely";
import pg from "pg";
import { describe, expect, it } from "vitest";
import {
  deposit,
  expireDueHolds,
  findInvariantViolations,
  getExpiryLag,
  placeHold,
  rearmExpiryTimer,
  releaseHold,
  runExpiryTimer,
} from "../src/app/credits/index.ts";
import { cancelJob } from "../src/enqueue/job-actions.ts";
import { creditJobs, placeHoldsInBulk, timerState, untilDue } from "./support/credits.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";

const database = useTestDatabase();
const fromNow = (ms: number) => new Date(Date.now() + ms);
const HOUR = 3_600_000;

async function withClient<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: database().url });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/**
 * A clean slate for the next test: no active hold, no timer job (the simulated runs leave the
 * job they stood for, and some tests add their own), nothing armed.
 */
async function resolveAll(): Promise<void> {
  const { db } = database();
  await sql`select credits.release_hold(id) from credits.holds where state = 'active'`.execute(db);
  for (const job of await creditJobs(db)) if (!job.locked) await cancelJob(db, job.id);
  expect(await rearmExpiryTimer(db)).toBeNull();
}

// One database for the file and no worker: jobs stay where place_hold put them.
describe("place_hold and the timer", () => {
  it("the first hold arms one job; later holds leave it; an earlier one moves that same job", async () => {
    const { db } = database();
    expect(await timerState(db)).toEqual({ armedAt: null, jobId: null });
    await deposit(db, { accountId: "arm-1", amount: 100, idempotencyKey: "opening" });

    const first = await placeHold(db, { accountId: "arm-1", amount: 1, expiresAt: fromNow(HOUR), idempotencyKey: "a" });
    const [job, ...others] = await creditJobs(db);
    expect(others).toEqual([]);
    expect(job).toMatchObject({ task: "credits__expiry_timer", runAt: first.expiresAt, priority: -10 });
    expect(await timerState(db)).toEqual({ armedAt: first.expiresAt, jobId: job?.id });

    await placeHold(db, { accountId: "arm-1", amount: 1, expiresAt: fromNow(2 * HOUR), idempotencyKey: "b" });
    // Within the timer's resolution (1 s) of the armed time: not worth moving it.
    await placeHold(db, {
      accountId: "arm-1",
      amount: 1,
      expiresAt: new Date(+first.expiresAt - 500),
      idempotencyKey: "c",
    });
    expect(await creditJobs(db)).toEqual([job]);

    const earlier = await placeHold(db, {
      accountId: "arm-1",
      amount: 1,
      expiresAt: fromNow(HOUR / 2),
      idempotencyKey: "d",
    });
    expect(await creditJobs(db)).toEqual([{ ...job, runAt: earlier.expiresAt }]);
    expect(await timerState(db)).toEqual({ armedAt: earlier.expiresAt, jobId: job?.id });

    // Rolled back with the app's transaction: the timer stays where it was.
    await expect(
      db.transaction().execute(async (trx) => {
        await placeHold(trx, { accountId: "arm-1", amount: 1, expiresAt: fromNow(60_000), idempotencyKey: "e" });
        throw new Error("the app's own write failed");
      }),
    ).rejects.toThrow("the app's own write failed");
    expect(await timerState(db)).toEqual({ armedAt: earlier.expiresAt, jobId: job?.id });
    expect(await creditJobs(db)).toEqual([{ ...job, runAt: earlier.expiresAt }]);
    await resolveAll();
  });

  it("a hold placed while another transaction arms the timer gets a job of its own, without waiting", async () => {
    const { db } = database();
    await deposit(db, { accountId: "arm-2", amount: 100, idempotencyKey: "opening" });
    await placeHold(db, { accountId: "arm-2", amount: 1, expiresAt: fromNow(HOUR), idempotencyKey: "a" });
    await withClient(async (client) => {
      await client.query("begin");
      await client.query("select * from credits.expiry_timer for no key update");
      // Would deadlock if it waited here while holding its account (another arming transaction
      // may be waiting for that account); instead it adds its own timer job and returns.
      const hold = await placeHold(db, {
        accountId: "arm-2",
        amount: 1,
        expiresAt: fromNow(60_000),
        idempotencyKey: "b",
      });
      const jobs = await creditJobs(db);
      expect(jobs.filter((job) => job.task === "credits__expiry_timer").map((job) => job.runAt)).toContainEqual(
        hold.expiresAt,
      );
      await client.query("rollback");
    });
    await resolveAll();
  });

  it("in REPEATABLE READ, a snapshot older than the timer's last change fails with 40001 instead of reading it stale", async () => {
    const { db } = database();
    await deposit(db, { accountId: "arm-3", amount: 100, idempotencyKey: "opening" });
    await deposit(db, { accountId: "arm-3b", amount: 100, idempotencyKey: "opening" });
    await withClient(async (client) => {
      await client.query("begin isolation level repeatable read");
      await client.query("select 1"); // the snapshot is taken here
      // Arms the timer, on another account: arm-3's own row is unchanged since the snapshot.
      await placeHold(db, { accountId: "arm-3b", amount: 1, expiresAt: fromNow(HOUR), idempotencyKey: "a" });
      const attempt = client.query("select credits.place_hold('arm-3', 1, now() + interval '2 hours', 'b')");
      await expect(attempt).rejects.toMatchObject({ code: "40001" });
      await client.query("rollback");
      // A fresh REPEATABLE READ transaction sees the timer as it is, and places the hold.
      await client.query("begin isolation level repeatable read");
      await client.query("select credits.place_hold('arm-3', 1, now() + interval '2 hours', 'b')");
      await client.query("commit");
    });
    expect(await findInvariantViolations(db)).toEqual([]);
    await resolveAll();
  });
});

describe("a timer run racing place_hold", () => {
  it("waits for a hold placed before the run began but committed after it looked: the timer is armed for it", async () => {
    const { db } = database();
    await deposit(db, { accountId: "race-1", amount: 100, idempotencyKey: "opening" });
    await deposit(db, { accountId: "race-1b", amount: 100, idempotencyKey: "opening" });
    const early = await placeHold(db, {
      accountId: "race-1",
      amount: 1,
      expiresAt: fromNow(HOUR),
      idempotencyKey: "a",
    });
    const { jobId } = await timerState(db);
    await withClient(async (client) => {
      // Expires after the armed time, so it arms nothing: it counts on the armed run.
      await client.query("begin");
      const { rows } = await client.query<{ expires_at: Date }>(
        "select expires_at from credits.place_hold('race-1b', 1, now() + interval '2 hours', 'late')",
      );
      const late = rows[0]?.expires_at;
      // That run begins now, and the only other active hold goes: without the wait, it would
      // look for the next hold, find none (the late one is not committed), and arm nothing.
      await releaseHold(db, early.id);
      const run = runExpiryTimer(db, { jobId: String(jobId), settleMs: 20_000 });
      await waitFor("the run to wait for the open transaction", async () => {
        const { rows: waiting } = await sql<{ n: string }>`
          select count(*) as n from pg_stat_activity
           where datname = current_database() and query like '%credits.count_open%' and pid <> pg_backend_pid()`.execute(
          db,
        );
        return Number(waiting[0]?.n) > 0 ? true : undefined;
      });
      await client.query("commit");
      const outcome = await run;
      expect(outcome).toMatchObject({ openWriters: 1, settled: true, nextAt: late });
      expect(await timerState(db)).toMatchObject({ armedAt: late });
    });
    await resolveAll();
  });

  it("a transaction still open after the wait makes the timer fire again within its resolution", async () => {
    const { db } = database();
    await deposit(db, { accountId: "race-2", amount: 100, idempotencyKey: "opening" });
    await placeHold(db, { accountId: "race-2", amount: 1, expiresAt: fromNow(HOUR), idempotencyKey: "a" });
    const { jobId } = await timerState(db);
    await withClient(async (client) => {
      await client.query("begin");
      await client.query("select credits.place_hold('race-2', 1, now() + interval '2 hours', 'late')");
      const before = Date.now();
      const outcome = await runExpiryTimer(db, { jobId: String(jobId), settleMs: 0 });
      expect(outcome).toMatchObject({ openWriters: 1, settled: false });
      // Armed within the resolution (1 s), not for the hour-away hold.
      expect(+(outcome.nextAt ?? 0)).toBeLessThan(before + 60_000);
      await client.query("commit");
    });
    await resolveAll();
  });

  it("a hold placed after the run began arms a new job itself; the run's re-arm keeps the earlier time", async () => {
    const { db } = database();
    await deposit(db, { accountId: "race-3", amount: 100, idempotencyKey: "opening" });
    await placeHold(db, { accountId: "race-3", amount: 1, expiresAt: fromNow(HOUR), idempotencyKey: "a" });
    const { jobId } = await timerState(db);
    await sql`select credits.begin_expiry_timer(${jobId}::bigint)`.execute(db);
    expect(await timerState(db)).toEqual({ armedAt: null, jobId: null });
    const soon = await placeHold(db, {
      accountId: "race-3",
      amount: 1,
      expiresAt: fromNow(HOUR / 2),
      idempotencyKey: "b",
    });
    const armed = await timerState(db);
    expect(armed.armedAt).toEqual(soon.expiresAt);
    expect(armed.jobId).not.toBe(jobId);
    expect(await rearmExpiryTimer(db)).toEqual(soon.expiresAt);
    expect(await timerState(db)).toEqual(armed);
    await resolveAll();
  });

  it("a timer job that was cancelled by hand is replaced by the next re-arm (the sweep's safety net)", async () => {
    const { db } = database();
    await deposit(db, { accountId: "heal-1", amount: 100, idempotencyKey: "opening" });
    const hold = await placeHold(db, { accountId: "heal-1", amount: 1, expiresAt: fromNow(HOUR), idempotencyKey: "a" });
    const lost = await timerState(db);
    await cancelJob(db, String(lost.jobId));
    expect(await rearmExpiryTimer(db)).toEqual(hold.expiresAt);
    const healed = await timerState(db);
    expect(healed.jobId).not.toBe(lost.jobId);
    expect(await creditJobs(db)).toMatchObject([{ id: healed.jobId, runAt: hold.expiresAt }]);
    await resolveAll();
  });
});

describe("expiry lag in SQL", () => {
  it("counts due holds still active and how late the oldest is", async () => {
    const { db } = database();
    await placeHoldsInBulk(db, { prefix: "lag", accounts: 2, count: 3, lifetime: "200 milliseconds" });
    await untilDue(db, "lag");
    const lag = await getExpiryLag(db);
    expect(lag.dueHolds).toBe(3);
    expect(lag.oldestDueSeconds).toBeGreaterThan(0);
    await expireDueHolds(db);
    expect(await getExpiryLag(db)).toMatchObject({ dueHolds: 0, oldestDueSeconds: 0 });
  });
});
