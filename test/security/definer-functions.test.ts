/**
 * Acceptance 2: SECURITY DEFINER functions run as their owner, so whoever may call one must not
 * be able to slip its own code into it. PostgreSQL searches the session's temporary schema first
 * for types and tables unless search_path names pg_temp, and last when it is named last; a role
 * with EXECUTE (and the TEMP privilege every role has by default) can create a temporary domain
 * named `text` or `jsonb` whose check runs its own function, and a function whose search_path
 * is '' then runs that code as its owner wherever it declares, casts or assigns such a value.
 *
 * The catalog test lists every SECURITY DEFINER function in the schemas pgjobs and its app own
 * (new ones included) and fails on one without pg_temp last in its search_path, and on any
 * function there that PUBLIC may execute. The attack itself is then tried on each of them, as a
 * signed-in user and as service_role, with a canary proving the attack works where it should.
 */
import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestDatabase } from "../support/database.ts";
import { type ApiRole, userClaims } from "./api-role.ts";

const database = useTestDatabase({ supabase: true });

const SCHEMAS = ["graphile_worker", "pgjobs", "credits", "credits_private"];
const USER_A = "aaaaaaaa-0000-4000-8000-00000000000a";

/** Types a function body may name unqualified (keywords such as bigint or integer cannot be shadowed). */
const SHADOWED_TYPES = [
  "text",
  "json",
  "jsonb",
  "timestamptz",
  "uuid",
  "int8",
  "int4",
  "int2",
  "bool",
  "interval",
  "name",
];

/**
 * Temporary objects an attacker makes: a domain over each of those types named like it, whose
 * check runs the attacker's code (any value assigned, declared or cast to the shadow runs it),
 * and views named like the tables the functions use, should one be named without its schema.
 */
const ATTACK_SQL = [
  `create function pg_temp.attacker_code() returns integer language plpgsql as $$
   begin
     raise exception 'HIJACKED: the attacker''s code ran as %', current_user;
   end $$`,
  `create function pg_temp.attacker_check(anyelement) returns boolean language plpgsql as $$
   begin
     perform pg_temp.attacker_code();
     return true;
   end $$`,
  ...SHADOWED_TYPES.map(
    (type) => `create domain pg_temp."${type}" as pg_catalog."${type}" check (pg_temp.attacker_check(value))`,
  ),
  ...[
    "accounts",
    "holds",
    "ledger_entries",
    "expiry_timer",
    "job_runs",
    "task_registry",
    "enqueue_grants",
    "enqueue_counters",
    "workers",
    "_private_jobs",
    "_private_tasks",
    "_private_job_queues",
    "jobs",
  ].map((relation) => `create temp view "${relation}" as select pg_temp.attacker_code() as x`),
].join(";\n");

/** Arguments that take each function deep into its body, for user A (who owns account sec-a). */
const CALLS: Record<string, string> = {
  "pgjobs.enqueue(text,jsonb,timestamp with time zone,text,text,integer,integer)":
    "select pgjobs.enqueue('pgjobs__ping', '{\"message\":\"x\"}', now() + interval '1 minute', 'key')",
  // An untyped literal, so that only the function (not this statement's own casts) meets the shadows.
  "pgjobs.enqueue_many(jsonb,text)":
    'select * from pgjobs.enqueue_many(\'[{"task":"pgjobs__ping","payload":{"message":"x"},"job_key":"key-many"}]\')',
  "credits.deposit(text,bigint,text)": "select credits.deposit('sec-a', 5, 'deposit-2')",
  "credits.place_hold(text,bigint,timestamp with time zone,text)":
    "select credits.place_hold('sec-a', 1, now() + interval '1 second', 'hold-2')",
  "credits.capture_hold(bigint,bigint)": "select credits.capture_hold((select min(id) from credits.holds), 1)",
  "credits.release_hold(bigint)": "select credits.release_hold((select min(id) from credits.holds))",
  "credits.expire_hold(bigint)": "select credits.expire_hold((select min(id) from credits.holds))",
  "credits.expire_holds_batch(integer,integer)": "select credits.expire_holds_batch(10, 5)",
  "credits.set_account_owner(text,uuid)": `select credits.set_account_owner('sec-b', '${USER_A}')`,
  "credits.arm_expiry_timer(timestamp with time zone,boolean)":
    "select credits.arm_expiry_timer(now() + interval '1 second', true)",
  "credits.begin_expiry_timer(bigint)": "select credits.begin_expiry_timer(1)",
  "credits.open_hold_writers()": "select credits.open_hold_writers()",
  "credits.count_open(text[])": "select credits.count_open(array['1/1'])",
  "credits.rearm_expiry_timer(boolean)": "select credits.rearm_expiry_timer(true)",
  "credits_private.deposit(text,bigint,text)": "select credits_private.deposit('sec-a', 5, 'deposit-3')",
  "credits_private.place_hold(text,bigint,timestamp with time zone,text)":
    "select credits_private.place_hold('sec-a', 1, now() + interval '1 second', 'hold-3')",
  "credits_private.capture_hold(bigint,bigint)":
    "select credits_private.capture_hold((select min(id) from credits.holds), 1)",
  "credits_private.release_hold(bigint)": "select credits_private.release_hold((select min(id) from credits.holds))",
  "credits_private.expire_hold(bigint)": "select credits_private.expire_hold((select min(id) from credits.holds))",
  "credits_private.expire_holds_batch(integer,integer)": "select credits_private.expire_holds_batch(10, 5)",
};

async function definerFunctions(): Promise<Array<{ name: string; config: string[] | null; public_execute: boolean }>> {
  const { rows } = await sql<{ name: string; config: string[] | null; public_execute: boolean }>`
    select p.oid::regprocedure::text as name, p.proconfig as config,
           coalesce(p.proacl is null or exists (select 1 from aclexplode(p.proacl) a where a.grantee = 0), true)
             as public_execute
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = any(${SCHEMAS}) and p.prosecdef
     order by 1`.execute(database().db);
  return rows;
}

/** The last schema of a function's pinned search_path, or what it lacks. */
function lastOnSearchPath(config: string[] | null): string {
  const setting = config?.find((entry) => entry.startsWith("search_path="));
  if (!setting) return "(no search_path set)";
  const schemas = setting.slice("search_path=".length).split(",");
  return schemas.at(-1)!.trim().replaceAll('"', "") || "(empty)";
}

/**
 * A fresh session of `role` (via authenticator, as PostgREST) that made the attack's temporary
 * objects before calling anything, so no plan cached earlier hides a vulnerable function.
 */
async function attackerSession(role: ApiRole) {
  const client = new pg.Client({ connectionString: database().url, application_name: "pgjobs hijack test" });
  await client.connect();
  try {
    await client.query("set session authorization authenticator");
    await client.query(`set role ${role}`);
    await client.query(ATTACK_SQL);
  } catch (error) {
    await client.end();
    throw error;
  }
  return {
    async call(statement: string): Promise<string> {
      await client.query("begin");
      try {
        await client.query("select set_config('request.jwt.claims', $1, true)", [JSON.stringify(userClaims(USER_A))]);
        await client.query(statement);
        return "returned";
      } catch (error) {
        return (error as Error).message;
      } finally {
        await client.query("rollback");
      }
    },
    close: () => client.end(),
  };
}

beforeAll(async () => {
  const { db } = database();
  // User A owns account sec-a, with credit and an active hold; sec-b exists, owned by no one.
  await sql`select credits.set_account_owner('sec-a', ${USER_A}::uuid)`.execute(db);
  await sql`select credits.deposit('sec-a', 100, 'deposit-1')`.execute(db);
  await sql`select credits.deposit('sec-b', 100, 'deposit-1')`.execute(db);
  await sql`select credits.place_hold('sec-a', 10, now() - interval '1 second' + interval '1 hour', 'hold-1')`.execute(
    db,
  );
  await sql`select pgjobs.grant_enqueue('authenticated', 'pgjobs__ping')`.execute(db);
  // The canary: what every function here looked like before (search_path '').
  await sql`
    create function public.hijack_canary(p jsonb) returns integer
    language sql security definer set search_path = ''
    as $$ select length(p::text) $$`.execute(db);
  // "A role granted EXECUTE on each": granted to the attackers for this test only.
  for (const { name } of await definerFunctions()) {
    const schema = name.split(".")[0]!;
    await sql.raw(`grant usage on schema ${schema} to authenticated, service_role`).execute(db);
    await sql.raw(`grant execute on function ${name} to authenticated, service_role`).execute(db);
  }
});

afterAll(async () => {
  const { db } = database();
  for (const { name } of await definerFunctions()) {
    await sql.raw(`revoke execute on function ${name} from authenticated, service_role`).execute(db);
  }
});

describe("acceptance 2: SECURITY DEFINER functions cannot be made to run a caller's code", () => {
  it("every SECURITY DEFINER function pins search_path with pg_temp last, and PUBLIC may execute no function here", async () => {
    const functions = await definerFunctions();
    expect(functions.map((fn) => fn.name)).toContain(
      "pgjobs.enqueue(text,jsonb,timestamp with time zone,text,text,integer,integer)",
    );
    expect(functions.filter((fn) => lastOnSearchPath(fn.config) !== "pg_temp")).toEqual([]);
    // Checked again after the grants above, which are to roles, never to PUBLIC.
    const { rows } = await sql<{ name: string }>`
      select p.oid::regprocedure::text as name
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname = any(${SCHEMAS})
         and (p.proacl is null or exists (select 1 from aclexplode(p.proacl) a where a.grantee = 0))`.execute(
      database().db,
    );
    expect(rows).toEqual([]);
  });

  it("every SECURITY DEFINER function has a call in this test (a new one must be added here)", async () => {
    const missing = (await definerFunctions()).map((fn) => fn.name).filter((name) => !(name in CALLS));
    expect(missing).toEqual([]);
  });

  it("the canary: a function with search_path '' runs the attacker's code as its owner", async () => {
    await sql`grant execute on function public.hijack_canary(jsonb) to authenticated`.execute(database().db);
    const attacker = await attackerSession("authenticated");
    try {
      expect(await attacker.call(`select public.hijack_canary('{"a":1}')`)).toMatch(
        /HIJACKED: the attacker's code ran as postgres|HIJACKED: the attacker's code ran as \w+/,
      );
    } finally {
      await attacker.close();
    }
  });

  it.each(["authenticated", "service_role"] as const)(
    "as %s, no SECURITY DEFINER function runs the attacker's temporary objects",
    async (role) => {
      const attacker = await attackerSession(role);
      try {
        const outcomes: Record<string, string> = {};
        for (const { name } of await definerFunctions()) outcomes[name] = await attacker.call(CALLS[name]!);
        const hijacked = Object.entries(outcomes).filter(([, outcome]) => outcome.includes("HIJACKED"));
        expect(hijacked).toEqual([]);
        // The calls got past their checks and did their work: the attack was really tried.
        expect(outcomes["pgjobs.enqueue(text,jsonb,timestamp with time zone,text,text,integer,integer)"]).toBe(
          "returned",
        );
        expect(outcomes["pgjobs.enqueue_many(jsonb,text)"]).toBe("returned");
        expect(outcomes["credits.place_hold(text,bigint,timestamp with time zone,text)"]).toBe("returned");
        expect(outcomes["credits.capture_hold(bigint,bigint)"]).toBe("returned");
        if (role === "service_role") {
          expect(Object.values(outcomes).filter((outcome) => outcome !== "returned")).toEqual([]);
        }
      } finally {
        await attacker.close();
      }
    },
  );
});
