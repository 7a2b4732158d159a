import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import {
  AccountNotFoundError,
  captureHold,
  deposit,
  expireHold,
  findInvariantViolations,
  getAccountSummary,
  HoldAlreadyResolvedError,
  IdempotencyConflictError,
  InsufficientCreditError,
  placeHold,
  releaseHold,
} from "../src/app/credits/index.ts";
import { useTestDatabase } from "./support/database.ts";

const database = useTestDatabase();
const inAnHour = () => new Date(Date.now() + 3_600_000);

async function expiryJobs(holdId: string) {
  const { rows } = await sql<{ key: string; run_at: Date; max_attempts: number }>`
    select key, run_at, max_attempts from graphile_worker.jobs
     where task_identifier = 'credits__expire_hold' and key = ${"credits:hold:" + holdId}`.execute(database().db);
  return rows;
}

describe("credits operations", () => {
  it("a repeated deposit key has one effect; a different amount under it is refused", async () => {
    const { db } = database();
    const first = await deposit(db, { accountId: "ops-1", amount: 100, idempotencyKey: "pay-1" });
    const again = await deposit(db, { accountId: "ops-1", amount: 100, idempotencyKey: "pay-1" });
    expect(again).toEqual(first);
    await expect(deposit(db, { accountId: "ops-1", amount: 50, idempotencyKey: "pay-1" })).rejects.toThrow(
      IdempotencyConflictError,
    );
    const summary = await getAccountSummary(db, "ops-1");
    expect(summary?.account).toMatchObject({ balance: 100, held: 0, available: 100 });
    expect(summary?.ledger).toHaveLength(1);
  });

  it("a hold reserves credit once per key and schedules exactly one expiry job", async () => {
    const { db } = database();
    await deposit(db, { accountId: "ops-2", amount: 100, idempotencyKey: "pay" });
    const expiresAt = inAnHour();
    const hold = await placeHold(db, { accountId: "ops-2", amount: 70, expiresAt, idempotencyKey: "order-1" });
    const again = await placeHold(db, { accountId: "ops-2", amount: 70, expiresAt, idempotencyKey: "order-1" });
    expect(again).toEqual(hold);
    expect((await getAccountSummary(db, "ops-2"))?.account).toMatchObject({ balance: 100, held: 70, available: 30 });
    const jobs = await expiryJobs(hold.id);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]?.run_at).toEqual(expiresAt);
    expect(jobs[0]?.max_attempts).toBe(5);
  });

  it("short credit fails with InsufficientCreditError naming account, requested and available", async () => {
    const { db } = database();
    await deposit(db, { accountId: "ops-3", amount: 40, idempotencyKey: "pay" });
    await placeHold(db, { accountId: "ops-3", amount: 30, expiresAt: inAnHour(), idempotencyKey: "a" });
    const attempt = placeHold(db, { accountId: "ops-3", amount: 25, expiresAt: inAnHour(), idempotencyKey: "b" });
    await expect(attempt).rejects.toThrow(InsufficientCreditError);
    const error = (await attempt.catch((e: unknown) => e)) as InsufficientCreditError;
    expect(error).toMatchObject({ code: "CR001", accountId: "ops-3", requested: 25, available: 10 });
    expect(error.message).toMatch(/insufficient credit on account ops-3: requested 25, available 10/);
    expect(error.message).toMatch(/Deposit more credit/);
    await expect(
      placeHold(db, { accountId: "ops-none", amount: 1, expiresAt: inAnHour(), idempotencyKey: "x" }),
    ).rejects.toThrow(AccountNotFoundError);
  });

  it("a partial capture charges part and releases the rest; a repeat charges nothing more", async () => {
    const { db } = database();
    await deposit(db, { accountId: "ops-4", amount: 100, idempotencyKey: "pay" });
    const hold = await placeHold(db, { accountId: "ops-4", amount: 60, expiresAt: inAnHour(), idempotencyKey: "o" });
    const captured = await captureHold(db, hold.id, 25);
    expect(captured).toMatchObject({ state: "captured", capturedAmount: 25 });
    expect(await captureHold(db, hold.id, 25)).toEqual(captured);
    await expect(captureHold(db, hold.id)).rejects.toThrow(IdempotencyConflictError);
    await expect(releaseHold(db, hold.id)).rejects.toThrow(HoldAlreadyResolvedError);
    expect(await expireHold(db, hold.id)).toEqual(captured); // the expiry job would find nothing to do
    expect((await getAccountSummary(db, "ops-4"))?.account).toMatchObject({ balance: 75, held: 0 });
  });

  it("release is idempotent; a released hold cannot be captured", async () => {
    const { db } = database();
    await deposit(db, { accountId: "ops-5", amount: 10, idempotencyKey: "pay" });
    const hold = await placeHold(db, { accountId: "ops-5", amount: 10, expiresAt: inAnHour(), idempotencyKey: "o" });
    const released = await releaseHold(db, hold.id);
    expect(released.state).toBe("released");
    expect(await releaseHold(db, hold.id)).toEqual(released);
    const attempt = captureHold(db, hold.id);
    await expect(attempt).rejects.toThrow(HoldAlreadyResolvedError);
    await expect(attempt).rejects.toThrow(
      new RegExp(`credit hold ${hold.id} \\(account ops-5\\) was already released`),
    );
  });

  it("expire_hold does nothing before expires_at", async () => {
    const { db } = database();
    await deposit(db, { accountId: "ops-6", amount: 10, idempotencyKey: "pay" });
    const hold = await placeHold(db, { accountId: "ops-6", amount: 5, expiresAt: inAnHour(), idempotencyKey: "o" });
    expect(await expireHold(db, hold.id)).toEqual(hold);
  });

  it("an operation in a rolled-back transaction leaves no trace, not even its expiry job", async () => {
    const { db } = database();
    await deposit(db, { accountId: "ops-7", amount: 10, idempotencyKey: "pay" });
    let holdId = "";
    await expect(
      db.transaction().execute(async (trx) => {
        holdId = (await placeHold(trx, { accountId: "ops-7", amount: 5, expiresAt: inAnHour(), idempotencyKey: "o" }))
          .id;
        throw new Error("the app's own write failed");
      }),
    ).rejects.toThrow("the app's own write failed");
    expect(await expiryJobs(holdId)).toEqual([]);
    expect((await getAccountSummary(db, "ops-7"))?.account.held).toBe(0);
  });

  it("the ledger cannot be edited and a resolved hold cannot change", async () => {
    const { db } = database();
    await deposit(db, { accountId: "ops-8", amount: 10, idempotencyKey: "pay" });
    const hold = await placeHold(db, { accountId: "ops-8", amount: 5, expiresAt: inAnHour(), idempotencyKey: "o" });
    await releaseHold(db, hold.id);
    await expect(sql`update credits.ledger_entries set amount = 1000`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from credits.ledger_entries`.execute(db)).rejects.toThrow(/append-only/);
    await expect(
      sql`update credits.holds set state = 'active', resolved_at = null where id = ${hold.id}::bigint`.execute(db),
    ).rejects.toThrow(/already released .* cannot change again/);
    await expect(sql`update credits.accounts set held = balance + 1 where id = 'ops-8'`.execute(db)).rejects.toThrow(
      /accounts_available_not_negative/,
    );
    expect(await findInvariantViolations(db)).toEqual([]);
  });
});
