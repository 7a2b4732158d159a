/**
 * The sweep beside captures, and a sweep that dies mid-batch. Holds are made due by placing them
 * with a short lifetime and waiting for the database clock to pass it (no worker runs here, so
 * the expiry timer's job stays queued and only the sweep acts).
 */
import { sql } from "kysely";
import pg from "pg";
import { describe, expect, it } from "vitest";
import {
  captureHold,
  deposit,
  expireDueHolds,
  findInvariantViolations,
  type Hold,
  HoldAlreadyResolvedError,
  placeHold,
} from "../src/app/credits/index.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";

const database = useTestDatabase();

async function dueHolds(accountId: string, count: number): Promise<Hold[]> {
  const { db } = database();
  await deposit(db, { accountId, amount: 1000, idempotencyKey: "opening" });
  const holds: Hold[] = [];
  for (let index = 0; index < count; index++) {
    const expiresAt = new Date(Date.now() + 200);
    holds.push(await placeHold(db, { accountId, amount: 10, expiresAt, idempotencyKey: `h${index}` }));
  }
  await waitFor("the holds to fall due", async () => {
    const { rows } = await sql<{ due: boolean }>`
      select bool_and(expires_at <= now()) as due from credits.holds where account_id = ${accountId}`.execute(db);
    return rows[0]?.due ? true : undefined;
  });
  return holds;
}

async function states(accountId: string): Promise<Record<string, string>> {
  const rows = await database()
    .db.selectFrom("credits.holds")
    .select(["id", "state"])
    .where("account_id", "=", accountId)
    .execute();
  return Object.fromEntries(rows.map((row) => [row.id, row.state]));
}

async function resolutions(holdId: string): Promise<string[]> {
  const rows = await database()
    .db.selectFrom("credits.ledger_entries")
    .select("kind")
    .where("hold_id", "=", holdId)
    .where("kind", "!=", "hold")
    .execute();
  return rows.map((row) => row.kind);
}

async function withClient<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: database().url });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

describe("the sweep beside a capture", () => {
  it("skips a hold whose row a capture has locked; the hold ends captured, never both", async () => {
    const { db } = database();
    const [contested, other] = await dueHolds("sweep-1", 2);
    if (!contested || !other) throw new Error("setup");
    await withClient(async (client) => {
      await client.query("begin");
      await client.query("select id from credits.holds where id = $1 for update", [contested.id]);

      const outcome = await expireDueHolds(db, { batchSize: 10 });
      expect(outcome).toMatchObject({ expired: 1, batches: 1 });
      expect(await states("sweep-1")).toEqual({ [contested.id]: "active", [other.id]: "expired" });

      await client.query("select credits.capture_hold($1)", [contested.id]);
      await client.query("commit");
    });
    // The next sweep finds the hold captured and leaves it so.
    expect(await expireDueHolds(db, { batchSize: 10 })).toMatchObject({ expired: 0 });
    expect(await states("sweep-1")).toEqual({ [contested.id]: "captured", [other.id]: "expired" });
    expect(await resolutions(contested.id)).toEqual(["capture"]);
    expect(await findInvariantViolations(db)).toEqual([]);
  });

  it("a capture that waits behind a sweep's batch finds the hold expired and charges nothing", async () => {
    const { db } = database();
    const [hold] = await dueHolds("sweep-2", 1);
    if (!hold) throw new Error("setup");
    let capture: Promise<unknown> | undefined;
    await expireDueHolds(db, {
      batchSize: 10,
      // Holding the batch's locks: start a capture, wait until it blocks on them, then commit.
      inBatch: async () => {
        capture = captureHold(db, hold.id).catch((error: unknown) => error);
        await waitFor("the capture to wait for the sweep's lock", async () => {
          const { rows } = await sql<{ waiting: string }>`
            select count(*) as waiting from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock' and query like '%capture_hold%'`.execute(
            db,
          );
          return Number(rows[0]?.waiting) === 1 ? true : undefined;
        });
      },
    });
    const error = await capture;
    expect(error).toBeInstanceOf(HoldAlreadyResolvedError);
    expect((error as Error).message).toMatch(
      new RegExp(`credit hold ${hold.id} \\(account sweep-2\\) was already expired`),
    );
    expect(await resolutions(hold.id)).toEqual(["expire"]);
    expect(await findInvariantViolations(db)).toEqual([]);
  });

  it("skips an account a capture holds (account, then hold: the capture's own order), so neither waits", async () => {
    const { db } = database();
    const [busy] = await dueHolds("sweep-5", 2);
    await dueHolds("sweep-5b", 2);
    if (!busy) throw new Error("setup");
    await withClient(async (client) => {
      // Mid-capture: the account is locked, the hold is next. A sweep that locked the hold first
      // and then waited for the account would deadlock with this.
      await client.query("begin");
      await client.query("select 1 from credits.accounts where id = 'sweep-5' for update");
      expect(await expireDueHolds(db, { batchSize: 10 })).toMatchObject({ expired: 2, stoppedBy: "nothing_left" });
      expect(Object.values(await states("sweep-5b"))).toEqual(["expired", "expired"]);
      expect(Object.values(await states("sweep-5"))).toEqual(["active", "active"]);
      await client.query("select credits.capture_hold($1)", [busy.id]);
      await client.query("commit");
    });
    expect(await expireDueHolds(db, { batchSize: 10 })).toMatchObject({ expired: 1 });
    expect(await findInvariantViolations(db)).toEqual([]);
  });

  it("a batch locks only the accounts its holds need: captures on the others do not wait", async () => {
    const { db } = database();
    for (const suffix of ["a", "b", "c", "d"]) await dueHolds(`sweep-6${suffix}`, 5);
    await deposit(db, { accountId: "sweep-6e", amount: 100, idempotencyKey: "opening" });
    const notDue = await placeHold(db, {
      accountId: "sweep-6e",
      amount: 10,
      expiresAt: new Date(Date.now() + 3_600_000),
      idempotencyKey: "later",
    });
    const lockedByBatch: string[][] = [];
    await expireDueHolds(db, {
      batchSize: 10,
      inBatch: async () => {
        // Which accounts the open batch holds: the ones another transaction cannot lock now.
        const free = await withClient(async (client) => {
          await client.query("begin");
          const { rows } = await client.query<{ id: string }>(
            "select id from credits.accounts where id like 'sweep-6%' order by id for update skip locked",
          );
          await client.query("rollback");
          return rows.map((row) => row.id);
        });
        const all = ["sweep-6a", "sweep-6b", "sweep-6c", "sweep-6d", "sweep-6e"];
        lockedByBatch.push(all.filter((id) => !free.includes(id)));
        // A capture of a hold that is not due, on an account the batch does not hold, goes through.
        if (lockedByBatch.length === 1) expect((await captureHold(db, notDue.id, 5)).state).toBe("captured");
      },
    });
    // 5 due holds each: a batch of 10 needs two accounts, never the one with nothing due.
    expect(lockedByBatch.map((ids) => ids.length)).toEqual([2, 2]);
    expect(lockedByBatch.flat().sort()).toEqual(["sweep-6a", "sweep-6b", "sweep-6c", "sweep-6d"]);
    expect(await findInvariantViolations(db)).toEqual([]);
  });
});

describe("a sweep that dies mid-batch", () => {
  it("killed by pg_terminate_backend: that batch rolls back, earlier batches stay, the next sweep finishes", async () => {
    const { db } = database();
    await dueHolds("sweep-3", 12);
    const attempt = expireDueHolds(db, {
      batchSize: 5,
      inBatch: async (trx, batch) => {
        if (batch.index !== 1) return;
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
        await withClient((client) => client.query("select pg_terminate_backend($1)", [rows[0]?.pid]));
      },
    });
    await expect(attempt).rejects.toThrow(/terminat|Connection/i);
    const after = Object.values(await states("sweep-3"));
    expect(after.filter((state) => state === "expired")).toHaveLength(5); // batch 0 committed
    expect(after.filter((state) => state === "active")).toHaveLength(7); // batch 1 rolled back, batch 2 never ran
    expect(await findInvariantViolations(db)).toEqual([]);

    expect(await expireDueHolds(db, { batchSize: 5 })).toMatchObject({ expired: 7, batches: 2 });
    expect(Object.values(await states("sweep-3")).every((state) => state === "expired")).toBe(true);
    expect(await findInvariantViolations(db)).toEqual([]);
  });

  it("a throw inside the batch's transaction rolls that batch back and leaves the rest intact", async () => {
    const { db } = database();
    await dueHolds("sweep-4", 12);
    const attempt = expireDueHolds(db, {
      batchSize: 5,
      inBatch: (_trx, batch) =>
        batch.index === 1 ? Promise.reject(new Error("worker crashed mid-batch")) : Promise.resolve(),
    });
    await expect(attempt).rejects.toThrow("worker crashed mid-batch");
    const after = Object.values(await states("sweep-4"));
    expect(after.filter((state) => state === "expired")).toHaveLength(5);
    expect(after.filter((state) => state === "active")).toHaveLength(7);
    expect(await findInvariantViolations(db)).toEqual([]);
  });
});
