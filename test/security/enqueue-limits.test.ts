/**
 * Acceptance 4: over the granted limits, each attempt is refused with a message naming the limit
 * and leaves nothing behind: a flood past the per-minute limit, an oversized or deeply nested
 * payload, a run_at in the past or past max_delay, a queue not granted, and a job key of another
 * task. Job keys belong to their task at every door, the backend's included; graphile-worker's
 * own doors cap payloads too.
 */
import { quickAddJob } from "graphile-worker";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appJobs } from "../support/app.ts";
import { useTestDatabase } from "../support/database.ts";
import { type ApiSession, apiSession, type Outcome, type Request, userClaims } from "./api-role.ts";

const database = useTestDatabase({ supabase: true });
let api: ApiSession;

const USER_A = "aaaaaaaa-0000-4000-8000-0000000000a4";
const USER_B = "bbbbbbbb-0000-4000-8000-0000000000b4";
const asA: Request = { role: "authenticated", claims: userClaims(USER_A) };
const asB: Request = { role: "authenticated", claims: userClaims(USER_B) };
const USER_C = "cccccccc-0000-4000-8000-0000000000c4";
const USER_D = "dddddddd-0000-4000-8000-0000000000d4";
const asC: Request = { role: "authenticated", claims: userClaims(USER_C) };
const asD: Request = { role: "authenticated", claims: userClaims(USER_D) };

function show(outcome: Outcome): string {
  return outcome.ok ? "allowed" : `${outcome.code} ${outcome.message}`;
}

/** What a refused attempt must not leave: jobs, and charges against the caller's minute. */
async function footprint() {
  const { rows } = await sql<{ jobs: string; charged: string }>`
    select (select count(*) from graphile_worker._private_jobs) as jobs,
           (select coalesce(sum(jobs), 0) from pgjobs.enqueue_counters) as charged`.execute(database().db);
  return rows[0]!;
}

async function expectRefused(request: Request, statement: string, says: RegExp) {
  const before = await footprint();
  const outcome = await api.request(request, statement);
  expect(show(outcome), statement).toMatch(says);
  expect(await footprint(), `${statement} left something behind`).toEqual(before);
}

function enqueue(payload: unknown, options: string = ""): string {
  return `select pgjobs.enqueue('pgjobs__ping', '${JSON.stringify(payload)}'${options}) as id`;
}

beforeAll(async () => {
  const { db } = database();
  await sql`select pgjobs.grant_enqueue('authenticated', 'pgjobs__ping', queues => array['pings'],
              max_payload_bytes => 512, max_delay => interval '1 hour', per_minute => 5)`.execute(db);
  await sql`select pgjobs.grant_enqueue('authenticated', 'credits__expire_hold', per_minute => 5)`.execute(db);
  await sql`select pgjobs.grant_enqueue('anon', 'pgjobs__ping', per_minute => 3, per_minute_all_callers => 3)`.execute(
    db,
  );
  api = await apiSession(database());
});

afterAll(async () => {
  await api.close();
});

describe("acceptance 4: a granted caller is held to its grant", () => {
  it("an oversized payload is refused, naming max_payload_bytes", async () => {
    await expectRefused(
      asA,
      enqueue({ message: "x".repeat(600) }),
      /^54000 pgjobs\.enqueue: the payload for "pgjobs__ping" is \d+ bytes; role authenticated's grant allows at most 512 bytes \(max_payload_bytes\)/,
    );
  });

  it("a deeply nested payload within the size is refused, naming the 64-level bound", async () => {
    let nested: unknown = "deep";
    for (let level = 0; level < 100; level++) nested = [nested];
    await expectRefused(
      asA,
      enqueue({ message: "x", nested }),
      /^54000 pgjobs\.enqueue: the payload for "pgjobs__ping" is nested deeper than 64 levels/,
    );
  });

  it("a run_at in the past, or past max_delay, is refused, naming it", async () => {
    await expectRefused(
      asA,
      enqueue({ message: "early" }, ", run_at => now() - interval '1 second'"),
      /^22023 pgjobs\.enqueue: run_at .* is in the past; role authenticated may not schedule a job ahead of the queue/,
    );
    await expectRefused(
      asA,
      enqueue({ message: "late" }, ", run_at => now() + interval '2 hours'"),
      /^22023 pgjobs\.enqueue: run_at .* is more than 01:00:00 ahead; .*allows up to 01:00:00 \(max_delay\)/,
    );
  });

  it("a queue not granted is refused, naming the granted ones; a granted one works", async () => {
    await expectRefused(
      asA,
      enqueue({ message: "q" }, ", queue => 'vip'"),
      /^42501 pgjobs\.enqueue: queue "vip" is not granted to role authenticated for "pgjobs__ping" \(queues: pings\)/,
    );
    expect(show(await api.request(asA, enqueue({ message: "q" }, ", queue => 'pings'")))).toBe("allowed");
  });

  it("priority ahead of other jobs, and attempts of its own choosing, are refused", async () => {
    await expectRefused(asA, enqueue({ message: "p" }, ", priority => -5"), /^42501 .*priority -5 would run ahead/);
    await expectRefused(
      asA,
      enqueue({ message: "m" }, ", max_attempts => 100"),
      /^42501 .*may not choose max_attempts/,
    );
  });

  it("a flood past the per-minute limit is refused from the first job over it, per user", async () => {
    // This user has 1 job this minute already (the granted queue above).
    const outcomes: Outcome[] = [];
    for (let i = 0; i < 12; i++) outcomes.push(await api.request(asA, enqueue({ message: `flood ${i}` })));
    const accepted = outcomes.filter((outcome) => outcome.ok).length;
    expect(accepted).toBe(4);
    expect(outcomes.slice(0, 4).every((outcome) => outcome.ok)).toBe(true);
    for (const outcome of outcomes.slice(4)) {
      expect(show(outcome)).toMatch(
        new RegExp(
          `^PT429 pgjobs\\.enqueue: rate limit: uid=${USER_A} may enqueue 5 jobs of "pgjobs__ping" per minute \\(per_minute of role authenticated's grant\\); 5 already this minute`,
        ),
      );
    }
    const { rows } = await sql<{ n: string }>`
      select count(*) as n from graphile_worker.jobs
       where task_identifier = 'pgjobs__ping' and created_at >= now() - interval '10 minutes'`.execute(database().db);
    expect(rows[0]!.n).toBe("5");
    // Nothing was charged for the refused ones; another user has a minute of its own.
    await expectRefused(asA, enqueue({ message: "one more" }), /^PT429 /);
    for (let i = 0; i < 5; i++) expect(show(await api.request(asB, enqueue({ message: `b ${i}` })))).toBe("allowed");
    await expectRefused(asB, enqueue({ message: "b over" }), /^PT429 .*uid=bbbbbbbb/);
  });

  it("requests without a user share their role's minute, and a limit for all callers holds too", async () => {
    for (let i = 0; i < 3; i++)
      expect(show(await api.request({ role: "anon" }, enqueue({ message: `anon ${i}` })))).toBe("allowed");
    await expectRefused({ role: "anon" }, enqueue({ message: "anon 3" }), /^PT429 .*role=anon may enqueue 3 jobs/);
    // A forged user id in anon's claims starts a new per-caller minute, but not a new role-wide one.
    await expectRefused(
      { role: "anon", claims: { role: "anon", sub: "forged" } },
      enqueue({ message: "forged" }),
      /^PT429 .*role anon may enqueue 3 jobs of "pgjobs__ping" per minute for all its callers together \(per_minute_all_callers\)/,
    );
  });

  it("a job key of another task is refused; a key reaches only its caller's own jobs", async () => {
    // The backend's key and user D's key exist; user C uses the same key.
    const backendJob = await appJobs.enqueue(database().db, "credits__expire_hold", { holdId: 1 }, { jobKey: "k1" });
    expect(show(await api.request(asD, enqueue({ message: "d keyed" }, ", job_key => 'k1'")))).toBe("allowed");
    const mine = await api.request(
      asC,
      "select pgjobs.enqueue('credits__expire_hold', '{\"holdId\":7}', job_key => 'k1') as id",
    );
    expect(show(mine)).toBe("allowed");
    // C's other task with C's own key: refused, naming the key's task.
    await expectRefused(
      asC,
      enqueue({ message: "c keyed" }, ", job_key => 'k1'"),
      new RegExp(
        `^23505 job key "uid=${USER_C}/k1" belongs to job \\d+ of task "credits__expire_hold"; a job key can only replace a job of its own task, not one of "pgjobs__ping"`,
      ),
    );
    const { rows } = await sql<{ key: string; task: string; payload: unknown; revision: number }>`
      select key, task, payload, revision from pgjobs.queued_jobs where key like '%k1' order by key`.execute(
      database().db,
    );
    expect(rows).toEqual([
      { key: "k1", task: "credits__expire_hold", payload: { holdId: 1 }, revision: 0 },
      { key: `uid=${USER_C}/k1`, task: "credits__expire_hold", payload: { holdId: 7 }, revision: 0 },
      { key: `uid=${USER_D}/k1`, task: "pgjobs__ping", payload: { message: "d keyed" }, revision: 0 },
    ]);
    expect(backendJob.key).toBe("k1");
  });
});

describe("job keys belong to their task at every door", () => {
  let heldJobId: string;

  beforeAll(async () => {
    const job = await appJobs.enqueue(
      database().db,
      "credits__expire_hold",
      { holdId: 42 },
      { jobKey: "credits:hold:42" },
    );
    heldJobId = job.id;
  });

  async function heldJob() {
    const { rows } = await sql`
      select key, task, payload, revision, attempts, max_attempts, locked_by from pgjobs.queued_jobs
       where id = ${heldJobId}::bigint`.execute(database().db);
    return rows[0];
  }

  const REFUSAL =
    /job key "credits:hold:42" belongs to (job \d+|a running job) of task "credits__expire_hold"; a job key can only replace a job of its own task, not one of "pgjobs__ping"/;

  it.each([
    [
      "graphile_worker.add_job",
      `select graphile_worker.add_job('pgjobs__ping', '{"message":"x"}', job_key => 'credits:hold:42')`,
    ],
    [
      "add_job preserve_run_at",
      `select graphile_worker.add_job('pgjobs__ping', '{"message":"x"}', job_key => 'credits:hold:42', job_key_mode => 'preserve_run_at')`,
    ],
    [
      "add_job unsafe_dedupe",
      `select graphile_worker.add_job('pgjobs__ping', '{"message":"x"}', job_key => 'credits:hold:42', job_key_mode => 'unsafe_dedupe')`,
    ],
    [
      "graphile_worker.add_jobs",
      `select graphile_worker.add_jobs(array[('pgjobs__ping', '{"message":"x"}', null, null, null, 'credits:hold:42', null, null)::graphile_worker.job_spec])`,
    ],
    [
      "pgjobs.enqueue as the backend",
      `select pgjobs.enqueue('pgjobs__ping', '{"message":"x"}', job_key => 'credits:hold:42')`,
    ],
  ])("%s: refused, and the other task's job is untouched", async (_door, statement) => {
    const before = await heldJob();
    await expect(sql.raw(statement).execute(database().db)).rejects.toThrow(REFUSAL);
    expect(await heldJob()).toEqual(before);
  });

  it("enqueue() and quickAddJob: refused, and the other task's job is untouched", async () => {
    const before = await heldJob();
    await expect(
      appJobs.enqueue(database().db, "pgjobs__ping", { message: "x" }, { jobKey: "credits:hold:42" }),
    ).rejects.toThrow(REFUSAL);
    await expect(
      quickAddJob({ pgPool: database().pool }, "pgjobs__ping", { message: "x" }, { jobKey: "credits:hold:42" }),
    ).rejects.toThrow(REFUSAL);
    expect(await heldJob()).toEqual(before);
  });

  it("while the other task's job runs: refused before its key is detached or its retries taken", async () => {
    const { db } = database();
    await sql`update graphile_worker._private_jobs set locked_by = 'a-worker', locked_at = now()
               where id = ${heldJobId}::bigint`.execute(db);
    try {
      const before = await heldJob();
      await expect(
        sql`select graphile_worker.add_job('pgjobs__ping', '{"message":"x"}', job_key => 'credits:hold:42')`.execute(
          db,
        ),
      ).rejects.toThrow(REFUSAL);
      expect(await heldJob()).toEqual(before);
      // The same task may replace its own running job, as graphile-worker always allowed.
      await sql`select graphile_worker.add_job('credits__expire_hold', '{"holdId":42}', job_key => 'credits:hold:42')`.execute(
        db,
      );
      expect(await heldJob()).toMatchObject({ key: null });
    } finally {
      await sql`delete from graphile_worker._private_jobs where locked_by = 'a-worker'`.execute(db);
    }
  });
});

describe("graphile-worker's own doors cap payloads too", () => {
  it("add_job and quickAddJob refuse a payload over the task's cap, naming it; nothing is queued", async () => {
    const before = await footprint();
    const big = { message: "x".repeat(70 * 1024) };
    await expect(
      sql`select graphile_worker.add_job('pgjobs__ping', ${JSON.stringify(big)}::json)`.execute(database().db),
    ).rejects.toThrow(
      /the payload of a "pgjobs__ping" job is \d+ bytes, over the task's cap of 65536 bytes \(maxPayloadBytes\)/,
    );
    await expect(quickAddJob({ pgPool: database().pool }, "pgjobs__ping", big)).rejects.toThrow(/maxPayloadBytes/);
    expect(await footprint()).toEqual(before);
  });
});
