/**
 * Acceptance 3: as `authenticated` user A, reading, capturing, releasing, holding or depositing
 * B's credit is denied (and leaves B's credit as it was); A's own operations work. Deposits and
 * expiry stay with the backend even if someone grants them to app users by mistake.
 */
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestDatabase } from "../support/database.ts";
import { type ApiSession, apiSession, type Outcome, type Request, userClaims } from "./api-role.ts";

const database = useTestDatabase({ supabase: true });
let api: ApiSession;

const USER_A = "aaaaaaaa-0000-4000-8000-0000000000a1";
const USER_B = "bbbbbbbb-0000-4000-8000-0000000000b1";
const asA: Request = { role: "authenticated", claims: userClaims(USER_A) };
const asB: Request = { role: "authenticated", claims: userClaims(USER_B) };
let holdOfB: string;
let secondHoldOfB: string;

function show(outcome: Outcome): string {
  return outcome.ok ? "allowed" : `${outcome.code} ${outcome.message}`;
}

/** B's account, holds and ledger as the backend sees them: must not change under A's attempts. */
async function creditOfB() {
  const { rows } = await sql`
    select (select row_to_json(a) from credits.accounts a where a.id = 'acct-b') as account,
           (select json_agg(h order by h.id) from credits.holds h where h.account_id = 'acct-b') as holds,
           (select count(*) from credits.ledger_entries e where e.account_id = 'acct-b') as entries`.execute(
    database().db,
  );
  return rows[0];
}

beforeAll(async () => {
  const { db } = database();
  await sql`select credits.set_account_owner('acct-a', ${USER_A}::uuid)`.execute(db);
  await sql`select credits.set_account_owner('acct-b', ${USER_B}::uuid)`.execute(db);
  await sql`select credits.deposit('acct-a', 100, 'pay-a')`.execute(db);
  await sql`select credits.deposit('acct-b', 100, 'pay-b')`.execute(db);
  api = await apiSession(database());
  const placed = await api.request(
    asB,
    "select (credits.place_hold('acct-b', 30, now() + interval '1 hour', 'order-b1')).id as id",
  );
  const second = await api.request(
    asB,
    "select (credits.place_hold('acct-b', 20, now() + interval '1 hour', 'order-b2')).id as id",
  );
  if (!placed.ok || !second.ok) throw new Error("B could not place its own holds");
  holdOfB = String(placed.rows[0]!.id);
  secondHoldOfB = String(second.rows[0]!.id);
});

afterAll(async () => {
  await api.close();
});

describe("acceptance 3: a signed-in user reaches only its own credit", () => {
  it("A reads its own account, holds and ledger, and none of B's", async () => {
    const [accounts, holds, ledger, bAccount, uid] = await api.tryInRequest(asA, [
      "select id, balance, owner_id from credits.accounts order by id",
      "select account_id from credits.holds",
      "select account_id, kind from credits.ledger_entries order by id",
      "select * from credits.accounts where id = 'acct-b'",
      "select credits.current_user_id() = auth.uid() as same, auth.uid()::text as uid",
    ]);
    expect(accounts).toEqual({ ok: true, rows: [{ id: "acct-a", balance: "100", owner_id: USER_A }] });
    expect(holds).toEqual({ ok: true, rows: [] });
    expect(ledger).toEqual({ ok: true, rows: [{ account_id: "acct-a", kind: "deposit" }] });
    expect(bAccount).toEqual({ ok: true, rows: [] });
    // credits reads the user exactly as Supabase's auth.uid() does.
    expect(uid).toEqual({ ok: true, rows: [{ same: true, uid: USER_A }] });
  });

  it("A cannot capture, release or hold B's credit, nor deposit to anyone; B's credit is untouched", async () => {
    const before = await creditOfB();
    const attempts = [
      `select credits.capture_hold(${holdOfB}, null)`,
      `select credits.capture_hold(${holdOfB}, 1)`,
      `select credits.release_hold(${secondHoldOfB})`,
      "select credits.place_hold('acct-b', 50, now() + interval '1 hour', 'locks-b')",
      "select credits.deposit('acct-a', 1000000, 'free-money')",
      "select credits.deposit('acct-b', 1, 'x')",
      "select credits.expire_hold(" + holdOfB + ")",
      "select credits.set_account_owner('acct-b', '" + USER_A + "')",
      "update credits.accounts set balance = 1000000 where id = 'acct-a'",
      "insert into credits.ledger_entries (account_id, kind, amount, idempotency_key) values ('acct-a', 'deposit', 1000000, 'x')",
      "select credits_private.capture_hold(" + holdOfB + ", null)",
    ];
    for (const statement of attempts) {
      const outcome = await api.request(asA, statement);
      expect(show(outcome), statement).toMatch(/^42501 /);
    }
    const named = await api.request(asA, `select credits.capture_hold(${holdOfB}, null)`);
    expect(show(named)).toBe(`42501 credits.capture_hold: credit hold ${holdOfB} is not yours (or does not exist)`);
    // An id that exists and one that does not get the same answer: A cannot probe B's holds.
    expect(show(await api.request(asA, "select credits.capture_hold(999999999, null)"))).toBe(
      "42501 credits.capture_hold: credit hold 999999999 is not yours (or does not exist)",
    );
    expect(await creditOfB()).toEqual(before);
  });

  it("a request with no user, or anon, reaches no account at all", async () => {
    for (const request of [{ role: "authenticated" }, { role: "anon" }] as Request[]) {
      const outcome = await api.request(request, `select credits.release_hold(${secondHoldOfB})`);
      expect(show(outcome), request.role).toMatch(/^42501 /);
    }
    expect(show(await api.request({ role: "authenticated" }, `select credits.release_hold(${secondHoldOfB})`))).toMatch(
      /has no signed-in user/,
    );
  });

  it("A's own operations work: hold, capture part, release, and its ledger shows them", async () => {
    const placed = await api.request(
      asA,
      "select (credits.place_hold('acct-a', 40, now() + interval '1 hour', 'order-a1')).id as id",
    );
    if (!placed.ok) throw new Error(placed.message);
    const hold = String(placed.rows[0]!.id);
    expect(show(await api.request(asA, `select (credits.capture_hold(${hold}, 15)).state as state`))).toBe("allowed");
    const other = await api.request(
      asA,
      "select (credits.place_hold('acct-a', 10, now() + interval '1 hour', 'order-a2')).id as id",
    );
    if (!other.ok) throw new Error(other.message);
    const released = await api.request(
      asA,
      `select (credits.release_hold(${String(other.rows[0]!.id)})).state as state`,
    );
    expect(released).toEqual({ ok: true, rows: [{ state: "released" }] });
    const [account] = await api.tryInRequest(asA, ["select balance, held from credits.accounts where id = 'acct-a'"]);
    expect(account).toEqual({ ok: true, rows: [{ balance: "85", held: "0" }] });
  });

  it("deposits and expiry stay with the backend even when granted to app users by mistake", async () => {
    const { db } = database();
    await sql`grant execute on function credits.deposit(text, bigint, text), credits.expire_hold(bigint),
                credits.expire_holds_batch(integer, integer) to authenticated`.execute(db);
    try {
      for (const statement of [
        "select credits.deposit('acct-a', 1000000, 'granted-by-mistake')",
        `select credits.expire_hold(${holdOfB})`,
        "select credits.expire_holds_batch(1000, 50)",
      ]) {
        expect(show(await api.request(asA, statement)), statement).toMatch(
          /^42501 credits\.\w+: only the backend \(service_role\) may do this; role authenticated may not/,
        );
      }
    } finally {
      await sql`revoke execute on function credits.deposit(text, bigint, text), credits.expire_hold(bigint),
                  credits.expire_holds_batch(integer, integer) from authenticated`.execute(db);
    }
  });

  it("the backend (service_role) reads every account and deposits, expires and assigns owners", async () => {
    const backend: Request = { role: "service_role" };
    const outcomes = await api.tryInRequest(backend, [
      "select count(*)::int as n from credits.accounts",
      "select (credits.deposit('acct-b', 5, 'refund-b')).amount",
      `select (credits.release_hold(${secondHoldOfB})).state`,
      "select (credits.set_account_owner('acct-c', '" + USER_A + "')).owner_id",
      "select expired from credits.expire_holds_batch(10, 5)",
    ]);
    expect(outcomes.map(show)).toEqual(["allowed", "allowed", "allowed", "allowed", "allowed"]);
    expect(outcomes[0]).toEqual({ ok: true, rows: [{ n: 2 }] });
    // And B itself may act on its own hold.
    expect(show(await api.request(asB, `select credits.release_hold(${secondHoldOfB})`))).toBe("allowed");
  });
});
