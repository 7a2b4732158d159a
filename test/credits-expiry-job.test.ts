/**
 * Each hold schedules its own expiry job (credits__expire_hold at expires_at), so a hold expires
 * on time with a worker running and no sweep; a capture before then turns that job into a no-op.
 */
import { describe, expect, it } from "vitest";
import { captureHold, deposit, findInvariantViolations, placeHold } from "../src/app/credits/index.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

async function expiryRun(holdId: string) {
  return database()
    .db.selectFrom("pgjobs.job_runs")
    .select(["state", "result", "attempt"])
    .where("task", "=", "credits__expire_hold")
    .where("state", "=", "succeeded")
    .where((eb) => eb(eb.cast(eb.ref("payload", "->>").key("holdId" as never), "text"), "=", holdId))
    .executeTakeFirst();
}

describe("a hold's own expiry job", () => {
  it("expires a 2-second hold with a worker running and no sweep", async () => {
    const { db } = database();
    await startWorker(database()); // crontab "": no sweep
    await deposit(db, { accountId: "job-1", amount: 100, idempotencyKey: "opening" });
    const hold = await placeHold(db, {
      accountId: "job-1",
      amount: 40,
      expiresAt: new Date(Date.now() + 2000),
      idempotencyKey: "order-1",
    });
    const expired = await waitFor("the hold's job to expire it", async () => {
      const row = await db
        .selectFrom("credits.holds")
        .select(["state", "resolved_at", "expires_at"])
        .where("id", "=", hold.id)
        .executeTakeFirstOrThrow();
      return row.state === "active" ? undefined : row;
    });
    expect(expired.state).toBe("expired");
    expect(+(expired.resolved_at ?? 0)).toBeGreaterThanOrEqual(+expired.expires_at);
    const run = await waitFor("the job's history row", () => expiryRun(hold.id));
    expect(run).toMatchObject({ attempt: 1, result: { holdId: hold.id, state: "expired" } });
    const account = await db.selectFrom("credits.accounts").selectAll().where("id", "=", "job-1").executeTakeFirst();
    expect(account).toMatchObject({ balance: "100", held: "0" });
    expect(await findInvariantViolations(db)).toEqual([]);
  });

  it("leaves a hold captured before its expiry captured; its job then does nothing", async () => {
    const { db } = database();
    await startWorker(database());
    await deposit(db, { accountId: "job-2", amount: 100, idempotencyKey: "opening" });
    const hold = await placeHold(db, {
      accountId: "job-2",
      amount: 40,
      expiresAt: new Date(Date.now() + 2000),
      idempotencyKey: "order-1",
    });
    await captureHold(db, hold.id, 30);
    const run = await waitFor("the hold's job to run", () => expiryRun(hold.id));
    expect(run.result).toEqual({ holdId: hold.id, state: "captured" });
    const after = await db.selectFrom("credits.holds").selectAll().where("id", "=", hold.id).executeTakeFirstOrThrow();
    expect(after).toMatchObject({ state: "captured", captured_amount: "30" });
    const kinds = await db
      .selectFrom("credits.ledger_entries")
      .select("kind")
      .where("hold_id", "=", hold.id)
      .orderBy("id")
      .execute();
    expect(kinds.map((row) => row.kind)).toEqual(["hold", "capture"]);
    expect(await findInvariantViolations(db)).toEqual([]);
  });
});
