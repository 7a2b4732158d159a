/**
 * Acceptance 1: as `anon` and `authenticated`, with and without JWT claims, every table, view,
 * sequence and function of graphile_worker, pgjobs and credits that is not granted is denied,
 * tried one by one from the catalog (new ones included); with a task granted, enqueueing it
 * works and nothing else does. On a database set up as Supabase sets up a project.
 */
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestDatabase } from "../support/database.ts";
import { type ApiSession, apiSession, type Outcome, type Request, userClaims } from "./api-role.ts";

const database = useTestDatabase({ supabase: true });
let api: ApiSession;

const SCHEMAS = ["graphile_worker", "pgjobs", "credits", "credits_private"];
const USER_A = "aaaaaaaa-0000-4000-8000-000000000001";

const requests: Array<{ name: string; request: Request }> = [
  { name: "anon without claims", request: { role: "anon" } },
  { name: "anon with anon claims", request: { role: "anon", claims: { role: "anon" } } },
  { name: "authenticated without claims", request: { role: "authenticated" } },
  { name: "authenticated as user A", request: { role: "authenticated", claims: userClaims(USER_A) } },
];

interface Target {
  name: string;
  statements: string[];
}

/** Every relation and function in the schemas, each with the statements that would use it. */
async function targets(): Promise<Target[]> {
  const { rows: relations } = await sql<{ name: string; kind: string; first_column: string | null }>`
    select format('%I.%I', n.nspname, c.relname) as name, c.relkind::text as kind,
           (select quote_ident(a.attname) from pg_attribute a
             where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = '' and a.attidentity = ''
             order by a.attnum limit 1) as first_column
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = any(${SCHEMAS}) and c.relkind in ('r', 'p', 'v', 'm', 'S')
     order by 1`.execute(database().db);
  const { rows: functions } = await sql<{ name: string; call: string }>`
    select p.oid::regprocedure::text as name,
           format('select %I.%I(%s)', n.nspname, p.proname,
                  coalesce((select string_agg('null::' || format_type(t, null), ', ' order by i)
                              from unnest(p.proargtypes::oid[]) with ordinality as a(t, i)), '')) as call
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = any(${SCHEMAS}) and p.prokind = 'f'
     order by 1`.execute(database().db);
  expect(relations.length).toBeGreaterThan(20);
  expect(functions.length).toBeGreaterThan(50);
  return [
    ...relations.map(({ name, kind, first_column }) => ({
      name,
      statements:
        kind === "S"
          ? [`select * from ${name}`, `select nextval('${name}')`]
          : kind === "v"
            ? [`select * from ${name} limit 1`]
            : [
                `select * from ${name} limit 1`,
                `insert into ${name} default values`,
                `update ${name} set ${first_column} = ${first_column}`,
                `delete from ${name}`,
                `truncate ${name}`,
              ],
    })),
    ...functions.map(({ name, call }) => ({ name, statements: [call] })),
  ];
}

/** Denied by PostgreSQL's privileges (not by a function's own check). */
const PRIVILEGE_DENIED = /^permission denied for (schema|table|view|sequence|function) /;

/** Every statement the request may not run: each must fail with permission denied. */
async function expectDenied(request: Request, all: Target[], allowed: Set<string>) {
  const statements = all.flatMap((target) => target.statements.filter((statement) => !allowed.has(statement)));
  const outcomes = await api.tryInRequest(request, statements);
  const wrong = outcomes
    .map((outcome, index) => ({ statement: statements[index]!, outcome }))
    .filter(({ outcome }) => outcome.ok || !PRIVILEGE_DENIED.test(outcome.message));
  expect(wrong.map(({ statement, outcome }) => `${statement} → ${show(outcome)}`)).toEqual([]);
  return statements.length;
}

function show(outcome: Outcome): string {
  return outcome.ok ? "allowed" : `${outcome.code} ${outcome.message}`;
}

// What the credits app grants `authenticated` (migrations/0005): reading its own rows, and the
// operations a user may do on its own account. Each checks the caller itself.
const CREDITS_FOR_USERS = [
  "select * from credits.accounts limit 1",
  "select * from credits.holds limit 1",
  "select * from credits.ledger_entries limit 1",
  "select credits.current_user_id()",
  "select credits.place_hold(null::text, null::bigint, null::timestamp with time zone, null::text)",
  "select credits.capture_hold(null::bigint, null::bigint)",
  "select credits.release_hold(null::bigint)",
];
const ENQUEUE_CALL =
  "select pgjobs.enqueue(null::text, null::jsonb, null::timestamp with time zone, null::text, null::text, null::integer, null::integer)";
// A grant to enqueue a task reaches its batches too (0009), checked per job against the same grant.
const ENQUEUE_MANY_CALL = "select pgjobs.enqueue_many(null::jsonb, null::text)";

beforeAll(async () => {
  api = await apiSession(database());
});
afterAll(async () => {
  await api.close();
});

describe("acceptance 1: anon and authenticated reach nothing that is not granted", () => {
  it.each(requests)("by default, as $name: every table, view, sequence and function is denied", async ({ request }) => {
    const all = await targets();
    const allowed = new Set(request.role === "authenticated" ? CREDITS_FOR_USERS : []);
    const tried = await expectDenied(request, all, allowed);
    expect(tried).toBeGreaterThan(100);
    // What is granted answers, and sees nothing of anyone's: no account has an owner yet.
    for (const statement of allowed) {
      const [outcome] = await api.tryInRequest(request, [statement]);
      if (outcome!.ok) continue;
      // The operations refuse a request without a user (or an account it owns) themselves.
      expect(outcome!.message, statement).not.toMatch(PRIVILEGE_DENIED);
      expect(outcome!.code, statement).toBe("42501");
    }
  });

  describe("with pgjobs__ping granted to anon and authenticated", () => {
    beforeAll(async () => {
      await sql`select pgjobs.grant_enqueue('anon', 'pgjobs__ping')`.execute(database().db);
      await sql`select pgjobs.grant_enqueue('authenticated', 'pgjobs__ping')`.execute(database().db);
    });
    afterAll(async () => {
      await sql`select pgjobs.revoke_enqueue('anon', 'pgjobs__ping')`.execute(database().db);
      await sql`select pgjobs.revoke_enqueue('authenticated', 'pgjobs__ping')`.execute(database().db);
    });

    it.each(requests)("as $name: enqueueing it works", async ({ request }) => {
      const outcome = await api.request(
        request,
        "select pgjobs.enqueue('pgjobs__ping', '{\"message\":\"granted\"}') as id",
      );
      if (!outcome.ok) throw new Error(`enqueue was refused: ${outcome.message}`);
      const id = String(outcome.rows[0]!.id);
      const { rows } = await sql<{ task_identifier: string }>`
        select task_identifier from graphile_worker.jobs where id = ${id}::bigint`.execute(database().db);
      expect(rows).toEqual([{ task_identifier: "pgjobs__ping" }]);
    });

    it.each(requests)("as $name: nothing else does", async ({ request }) => {
      const all = await targets();
      const allowed = new Set([
        ENQUEUE_CALL,
        ENQUEUE_MANY_CALL,
        ...(request.role === "authenticated" ? CREDITS_FOR_USERS : []),
      ]);
      await expectDenied(request, all, allowed);
      const others = await api.tryInRequest(request, [
        "select pgjobs.enqueue('pgjobs__prune_history', '{\"keep\":{}}')",
        "select pgjobs.enqueue('credits__expire_holds', '{}')",
        `select pgjobs.enqueue_many('[{"task":"pgjobs__ping"},{"task":"credits__expire_holds"}]')`,
        "select graphile_worker.add_job('pgjobs__ping', '{\"message\":\"x\"}')",
      ]);
      expect(others.map(show)).toEqual([
        expect.stringMatching(/^42501 .*may not enqueue task "pgjobs__prune_history": it has no grant/),
        expect.stringMatching(/^42501 .*may not enqueue task "credits__expire_holds": it has no grant/),
        expect.stringMatching(
          /^42501 pgjobs\.enqueue_many: jobs\[1\]: role \w+ may not enqueue task "credits__expire_holds": it has no grant/,
        ),
        expect.stringMatching(/^42501 permission denied for schema graphile_worker/),
      ]);
    });

    it("granting made no function in public that anyone can call", async () => {
      const { rows } = await sql<{ name: string }>`
        select p.oid::regprocedure::text as name from pg_proc p
         where p.pronamespace = 'public'::regnamespace and p.proname like '%enqueue%'`.execute(database().db);
      expect(rows).toEqual([]);
    });
  });

  describe("an RPC function asked for by name", () => {
    it("is made in public, callable by the role named and by no other, despite Supabase's default privileges", async () => {
      await sql`select pgjobs.grant_enqueue('anon', 'pgjobs__ping', rpc_function => 'public.ping_from_browser')`.execute(
        database().db,
      );
      try {
        const call = 'select public.ping_from_browser(\'{"message":"rpc"}\') as id';
        expect(await api.request({ role: "anon" }, call)).toMatchObject({ ok: true });
        for (const role of ["authenticated", "service_role"] as const) {
          expect(show(await api.request({ role }, call)), role).toMatch(
            /^42501 permission denied for function ping_from_browser/,
          );
        }
        // Granted again under another name: the old function goes, the new one answers.
        await sql`select pgjobs.grant_enqueue('anon', 'pgjobs__ping', rpc_function => 'public.ping_renamed')`.execute(
          database().db,
        );
        expect(show(await api.request({ role: "anon" }, call))).toMatch(
          /function public.ping_from_browser.* does not exist/,
        );
        expect(
          await api.request({ role: "anon" }, 'select public.ping_renamed(\'{"message":"rpc"}\') as id'),
        ).toMatchObject({ ok: true });
      } finally {
        await sql`select pgjobs.revoke_enqueue('anon', 'pgjobs__ping')`.execute(database().db);
      }
      const { rows } = await sql<{ exists: boolean }>`
        select to_regprocedure('public.ping_from_browser(jsonb, timestamptz, text, text)') is not null
            or to_regprocedure('public.ping_renamed(jsonb, timestamptz, text, text)') is not null as exists`.execute(
        database().db,
      );
      expect(rows[0]!.exists).toBe(false);
    });

    it("will not grant history's retention task to anyone", async () => {
      await expect(
        sql`select pgjobs.grant_enqueue('service_role', 'pgjobs__prune_history')`.execute(database().db),
      ).rejects.toThrow(/pgjobs__prune_history is maintenance: whoever may enqueue it may empty the job history/);
    });

    it("will not replace a function the team made", async () => {
      await sql`create function public.team_enqueue(payload jsonb, run_at timestamptz, job_key text, queue text)
                returns bigint language sql as 'select 1::bigint'`.execute(database().db);
      await expect(
        sql`select pgjobs.grant_enqueue('anon', 'pgjobs__ping', rpc_function => 'public.team_enqueue')`.execute(
          database().db,
        ),
      ).rejects.toThrow(/exists already and was not made by pgjobs/);
      const { rows } = await sql<{ n: string }>`
        select count(*) as n from pgjobs.enqueue_grants where role = 'anon'`.execute(database().db);
      expect(rows[0]!.n).toBe("0");
    });
  });
});
