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

/** Jobs in the queue for the credits tasks (no job per hold: only the one expiry timer). */
async function creditJobs() {
  const { rows } = await sql<{ task_identifier: string; run_at: Date; priority: number }>`
    select task_identifier, run_at, priority from graphile_worker.jobs
     where task_identifier like 'credits\\_\\_%' order by run_at`.execute(database().db);
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

  it("a hold reserves credit once per key; it arms the expiry timer, and adds no job of its own", async () => {
    const { db } = database();
    await deposit(db, { accountId: "ops-2", amount: 100, idempotencyKey: "pay" });
    const expiresAt = new Date(Date.now() + 60_000); // before any other hold of this file
    const hold = await placeHold(db, { accountId: "ops-2", amount: 70, expiresAt, idempotencyKey: "order-1" });
    const again = await placeHold(db, { accountId: "ops-2", amount: 70, expiresAt, idempotencyKey: "order-1" });
    expect(again).toEqual(hold);
    expect((await getAccountSummary(db, "ops-2"))?.account).toMatchObject({ balance: 100, held: 70, available: 30 });
    expect(await creditJobs()).toEqual([
      { task_identifier: "credits__expiry_timer", run_at: expiresAt, priority: -10 },
    ]);
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
    expect(await expireHold(db, hold.id)).toEqual(captured); // expiry finds nothing to do
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

  it("an operation in a rolled-back transaction leaves no trace, not even a move of the timer", async () => {
    const { db } = database();
    await deposit(db, { accountId: "ops-7", amount: 10, idempotencyKey: "pay" });
    const before = await creditJobs();
    await expect(
      db.transaction().execute(async (trx) => {
        // Expires first of all this file's holds, so it moves the timer: rolled back with the rest.
        await placeHold(trx, {
          accountId: "ops-7",
          amount: 5,
          expiresAt: new Date(Date.now() + 5000),
          idempotencyKey: "o",
        });
        throw new Error("the app's own write failed");
      }),
    ).rejects.toThrow("the app's own write failed");
    expect(await creditJobs()).toEqual(before);
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

  it("no credits function or table is open to PUBLIC, and every function pins its search_path", async () => {
    const { rows } = await sql<{ name: string; problem: string }>`
      select p.oid::regprocedure::text as name, 'executable by public' as problem
        from pg_proc p
       where p.pronamespace = 'credits'::regnamespace
         and (p.proacl is null or exists (select 1 from aclexplode(p.proacl) a where a.grantee = 0))
      union all
      select p.oid::regprocedure::text, 'search_path not pg_catalog, pg_temp'
        from pg_proc p
       where p.pronamespace = 'credits'::regnamespace
         and not coalesce('search_path=pg_catalog, pg_temp' = any(p.proconfig), false)
      union all
      select c.relname::text, 'readable by public'
        from pg_class c
       where c.relnamespace = 'credits'::regnamespace and c.relkind in ('r', 'v')
         and (c.relacl is null or exists (select 1 from aclexplode(c.relacl) a where a.grantee = 0))`.execute(
      database().db,
    );
    expect(rows).toEqual([]);
  });

  it("a ledger entry must name an account and a hold of that account; neither can then go away", async () => {
    const { db } = database();
    await deposit(db, { accountId: "ops-9", amount: 10, idempotencyKey: "pay" });
    await deposit(db, { accountId: "ops-9b", amount: 10, idempotencyKey: "pay" });
    const hold = await placeHold(db, { accountId: "ops-9", amount: 5, expiresAt: inAnHour(), idempotencyKey: "o" });
    const entry = (account: string, holdId: string) =>
      sql`insert into credits.ledger_entries (account_id, kind, amount, held_change, hold_id)
          values (${account}, 'release', 0, -5, ${holdId}::bigint)`.execute(db);
    await expect(entry("ops-none", hold.id)).rejects.toMatchObject({ code: "23503" });
    await expect(entry("ops-9b", hold.id)).rejects.toThrow(/names account ops-9b and hold \d+, and no such account/);
    await expect(entry("ops-9", "999999999")).rejects.toMatchObject({ code: "23503" });
    await expect(sql`delete from credits.accounts where id = 'ops-9b'`.execute(db)).rejects.toThrow(
      /credits.accounts: DELETE is not allowed/,
    );
    await expect(sql`update credits.accounts set id = 'ops-9c' where id = 'ops-9b'`.execute(db)).rejects.toThrow(
      /UPDATE is not allowed/,
    );
    await expect(sql`truncate credits.holds, credits.accounts cascade`.execute(db)).rejects.toThrow(
      /TRUNCATE is not allowed/,
    );
    expect(await findInvariantViolations(db)).toEqual([]);
  });
});
