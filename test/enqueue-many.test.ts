/**
 * Bulk enqueue (issue #8): jobs.enqueueMany validates every job, names the one it refuses, runs in
 * the caller's transaction as one statement and returns the jobs in the order given;
 * pgjobs.enqueue_many applies pgjobs.enqueue's guards to each job, and a granted Supabase role may
 * batch only what it is granted, each job counted against its rate limit.
 */
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { syncTaskRegistry } from "../src/enqueue/sql-allowlist.ts";
import { BatchJobError, createPgJobs, defineTask, InvalidPayloadError, UnknownTaskError } from "../src/index.ts";
import { createTestKit } from "../src/testing/index.ts";
import { useTestDatabase } from "./support/database.ts";
import { type ApiSession, apiSession, type Outcome, type Request, userClaims } from "./security/api-role.ts";

const database = useTestDatabase({ supabase: true });

const mailTask = defineTask({
  name: "bulk__mail",
  payload: z.object({ to: z.email(), n: z.number().int().default(0) }),
  options: { maxAttempts: 4, queue: "mail" },
  run: () => Promise.resolve(null),
});
const noteTask = defineTask({
  name: "bulk__note",
  payload: z.object({ text: z.string() }),
  run: () => Promise.resolve(null),
});
const tasks = [mailTask, noteTask] as const;
const jobs = createPgJobs({ tasks });
const kit = createTestKit(jobs);

let api: ApiSession;
const USER = "eeeeeeee-0000-4000-8000-0000000000e8";
const asUser: Request = { role: "authenticated", claims: userClaims(USER) };

beforeAll(async () => {
  await syncTaskRegistry(database().db, tasks);
  await sql`select pgjobs.grant_enqueue('authenticated', 'bulk__note', per_minute => 5)`.execute(database().db);
  api = await apiSession(database());
});

afterAll(async () => {
  await api.close();
});

async function queued(): Promise<Array<{ id: string; task: string; payload: unknown }>> {
  const { rows } = await sql<{ id: string; task: string; payload: unknown }>`
    select id::text, task, payload from pgjobs.queued_jobs where task like 'bulk__%' order by id`.execute(
    database().db,
  );
  return rows;
}

async function clear(): Promise<void> {
  await sql`delete from graphile_worker._private_jobs j using graphile_worker._private_tasks t
             where t.id = j.task_id and t.identifier like 'bulk%'`.execute(database().db);
}

describe("jobs.enqueueMany", () => {
  it("enqueues in one statement, returns the jobs in the order given, with the tasks' options", async () => {
    await clear();
    const added = await jobs.enqueueMany(database().db, [
      { task: "bulk__note", payload: { text: "first" } },
      { task: "bulk__mail", payload: { to: "a@example.com" } },
      { task: "bulk__note", payload: { text: "third" }, options: { priority: 5, maxAttempts: 25 } },
      { task: "bulk__note", payload: { text: "first" } },
      { task: "bulk__mail", payload: { to: "b@example.com" }, options: { queue: "vip", maxAttempts: 2 } },
    ]);
    expect(added.map((job) => [job.taskName, job.queue, job.maxAttempts])).toEqual([
      ["bulk__note", null, 25],
      ["bulk__mail", "mail", 4],
      ["bulk__note", null, 25],
      ["bulk__note", null, 25],
      ["bulk__mail", "vip", 2],
    ]);
    const byId = new Map((await queued()).map((row) => [row.id, row]));
    expect(added.map((job) => byId.get(job.id)?.payload)).toEqual([
      { text: "first" },
      { to: "a@example.com", n: 0 }, // parsed: the schema's default applied
      { text: "third" },
      { text: "first" },
      { to: "b@example.com", n: 0 },
    ]);
    expect(new Set(added.map((job) => job.id)).size).toBe(5);
    await kit.assertEnqueued(database().db, "bulk__mail", { to: "b@example.com" });
    expect(await kit.findEnqueued(database().db, "bulk__note")).toHaveLength(3);
  });

  it("an empty list returns [] and enqueues nothing", async () => {
    await clear();
    expect(await jobs.enqueueMany(database().db, [])).toEqual([]);
    expect(await queued()).toEqual([]);
  });

  it("a bad payload at index k is refused naming k and its task, and nothing of the batch is enqueued", async () => {
    await clear();
    const attempt = jobs.enqueueMany(database().db, [
      { task: "bulk__note", payload: { text: "fine" } },
      { task: "bulk__note", payload: { text: "fine too" } },
      { task: "bulk__mail", payload: { to: "not an address" } },
    ]);
    await expect(attempt).rejects.toBeInstanceOf(BatchJobError);
    await expect(attempt).rejects.toThrow(/jobs\[2\] \(task "bulk__mail"\) was refused; nothing was enqueued[\s\S]*to/);
    const error = (await attempt.catch((caught: unknown) => caught)) as BatchJobError;
    expect([error.index, error.taskName, error.cause instanceof InvalidPayloadError]).toEqual([2, "bulk__mail", true]);
    const unknownKey = jobs.enqueueMany(database().db, [
      { task: "bulk__note", payload: { text: "x", txet: "typo" } as never },
    ]);
    await expect(unknownKey).rejects.toThrow(/jobs\[0\][\s\S]*Unrecognized key: "txet"/);
    const unknownTask = (await jobs
      .enqueueMany(database().db, [{ task: "bulk__nope" as never, payload: { text: "x" } }])
      .catch((caught: unknown) => caught)) as BatchJobError;
    expect(unknownTask.cause).toBeInstanceOf(UnknownTaskError);
    expect(await queued()).toEqual([]);
  });

  it("runs in the app's transaction: rolled back with it, and a failed batch rolls the app's writes back", async () => {
    await clear();
    await expect(
      database()
        .db.transaction()
        .execute(async (trx) => {
          await jobs.enqueueMany(trx, [{ task: "bulk__note", payload: { text: "doomed" } }]);
          await kit.assertEnqueued(trx, "bulk__note", { text: "doomed" }); // seen inside the transaction
          throw new Error("the app changed its mind");
        }),
    ).rejects.toThrow("the app changed its mind");
    expect(await queued()).toEqual([]);
    // A refusal from SQL (a job key held by another task's job) fails the statement, and the app's
    // transaction with it.
    await jobs.enqueueMany(database().db, [
      { task: "bulk__mail", payload: { to: "k@example.com" }, options: { jobKey: "shared" } },
    ]);
    await expect(
      database()
        .db.transaction()
        .execute(async (trx) => {
          await trx.insertInto("public.effects").values({ message: "app write", job_id: null }).execute();
          await jobs.enqueueMany(trx, [
            { task: "bulk__note", payload: { text: "ok" } },
            { task: "bulk__note", payload: { text: "keyed" }, options: { jobKey: "shared" } },
          ]);
        }),
    ).rejects.toThrow(/job key "shared" belongs to job \d+ of task "bulk__mail"/);
    const effects = await database()
      .db.selectFrom("public.effects")
      .selectAll()
      .where("message", "=", "app write")
      .execute();
    expect(effects).toEqual([]);
    expect((await queued()).map((row) => row.task)).toEqual(["bulk__mail"]);
  });

  it("a job key replaces the pending job of its task, as enqueue's does", async () => {
    await clear();
    const [first] = await jobs.enqueueMany(database().db, [
      { task: "bulk__note", payload: { text: "v1" }, options: { jobKey: "note:1" } },
    ]);
    const [second, other] = await jobs.enqueueMany(database().db, [
      { task: "bulk__note", payload: { text: "v2" }, options: { jobKey: "note:1" } },
      { task: "bulk__note", payload: { text: "unkeyed" } },
    ]);
    expect(second!.id).toBe(first!.id);
    expect(second!.key).toBe("note:1");
    expect(other!.id).not.toBe(first!.id);
    const rows = await queued();
    expect(rows.find((row) => row.id === first!.id)?.payload).toEqual({ text: "v2" });
    expect(rows).toHaveLength(2);
  });
});

describe("pgjobs.enqueue_many (SQL)", () => {
  const run = (jobsJson: unknown) =>
    sql<{
      job_index: number;
      job_id: string;
    }>`select * from pgjobs.enqueue_many(${JSON.stringify(jobsJson)}::jsonb)`.execute(database().db);

  it("returns a row per job in the order given", async () => {
    await clear();
    const { rows } = await run([
      { task: "bulk__note", payload: { text: "a" } },
      { task: "bulk__mail", payload: { to: "x@example.com" }, priority: 3 },
      { task: "bulk__note", payload: { text: "a" } },
    ]);
    expect(rows.map((row) => row.job_index)).toEqual([0, 1, 2]);
    const byId = new Map((await queued()).map((row) => [row.id, row]));
    expect(rows.map((row) => byId.get(String(row.job_id))?.task)).toEqual(["bulk__note", "bulk__mail", "bulk__note"]);
  });

  it("puts jobs with and without keys, into new and existing queues, each in its place (0011: keyless jobs go straight into the engine's table)", async () => {
    await clear();
    await run([{ task: "bulk__note", payload: { text: "old" }, job_key: "mixed:1" }]);
    const inAnHour = new Date(Date.now() + 3_600_000).toISOString();
    const { rows } = await sql<{
      job_index: number;
      job_id: string;
      run_at: Date;
      attempts: number;
      max_attempts: number;
      queue: string | null;
      key: string | null;
    }>`select * from pgjobs.enqueue_many(${JSON.stringify([
      { task: "bulk__mail", payload: { to: "a@example.com", n: 1 } },
      { task: "bulk__note", payload: { text: "new" }, job_key: "mixed:1", priority: 2 },
      { task: "bulk__note", payload: { text: "queued" }, queue: "bulk-fresh-queue", max_attempts: 7 },
      { task: "bulk__mail", payload: { to: "b@example.com", n: 2 }, job_key: "mixed:2", run_at: inAnHour },
      { task: "bulk__note", payload: { text: "last" } },
    ])}::jsonb)`.execute(database().db);
    const { rows: table } = await sql<{
      id: string;
      task: string;
      payload: unknown;
      queue: string | null;
      key: string | null;
      priority: number;
      max_attempts: number;
      run_at: Date;
    }>`select j.id::text, t.identifier as task, j.payload, q.queue_name as queue, j.key, j.priority, j.max_attempts, j.run_at
         from graphile_worker._private_jobs j
         join graphile_worker._private_tasks t on t.id = j.task_id
         left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
        where t.identifier like 'bulk%'`.execute(database().db);
    const byId = new Map(table.map((row) => [row.id, row]));
    expect(table).toHaveLength(5); // the keyed job replaced, not added
    expect(rows.map((row) => row.job_index)).toEqual([0, 1, 2, 3, 4]);
    const keylessIds = [rows[0]!, rows[2]!, rows[4]!].map((row) => BigInt(row.job_id));
    expect(keylessIds).toEqual([...keylessIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))); // drawn in the batch's order
    expect(
      rows.map((row) => {
        const stored = byId.get(String(row.job_id))!;
        expect([row.queue, row.key, row.max_attempts, row.run_at.getTime()]).toEqual([
          stored.queue,
          stored.key,
          stored.max_attempts,
          stored.run_at.getTime(),
        ]);
        return [stored.task, stored.payload, stored.queue, stored.key, stored.priority, stored.max_attempts];
      }),
    ).toEqual([
      ["bulk__mail", { to: "a@example.com", n: 1 }, "mail", null, 0, 4],
      ["bulk__note", { text: "new" }, null, "mixed:1", 2, 25],
      ["bulk__note", { text: "queued" }, "bulk-fresh-queue", null, 0, 7],
      ["bulk__mail", { to: "b@example.com", n: 2 }, "mail", "mixed:2", 0, 4],
      ["bulk__note", { text: "last" }, null, null, 0, 25],
    ]);
  });

  it("wakes the workers as add_jobs does: one 'jobs:insert' notification with the count, at commit", async () => {
    await clear();
    const listener = await database().pool.connect();
    try {
      const heard: string[] = [];
      listener.on("notification", (message) => {
        if (message.channel === "jobs:insert") heard.push(message.payload ?? "");
      });
      await listener.query('listen "jobs:insert"');
      await run([
        { task: "bulk__note" },
        { task: "bulk__note" },
        { task: "bulk__mail", payload: { to: "c@example.com" } },
      ]);
      // A round trip on the listening connection delivers what was sent before it.
      await listener.query("select 1");
      expect(heard.map((payload) => (JSON.parse(payload) as { count: number }).count)).toEqual([3]);
    } finally {
      await listener.query('unlisten "jobs:insert"');
      listener.release();
    }
  });

  it.each([
    ["not an array", { task: "bulk__note" }, /jobs must be a JSON array/],
    ["a job that is not an object", [{ task: "bulk__note" }, 5], /jobs\[1\] must be an object, got number/],
    ["a task that is not a string", [{ task: 5 }], /jobs\[0\] needs "task", the task's name as a string/],
    [
      "a priority that is not an integer",
      [{ task: "bulk__note", priority: 1.5 }],
      /jobs\[0\] has a priority that is not an integer/,
    ],
    ["an unknown task", [{ task: "bulk__note" }, { task: "bulk__nope" }], /jobs\[1\]: unknown task "bulk__nope"/],
    ["a misspelt key", [{ task: "bulk__note", runAt: "2030-01-01" }], /jobs\[0\] has unknown keys \(runAt\)/],
    [
      "a payload that is not an object",
      [{ task: "bulk__note", payload: [1] }],
      /jobs\[0\]: the payload for "bulk__note" must be a JSON object, got array/,
    ],
    [
      "an oversized payload",
      [{ task: "bulk__note", payload: { text: "x".repeat(70_000) } }],
      /jobs\[0\]: payload for "bulk__note" is \d+ bytes; the cap is 65536 bytes/,
    ],
    [
      "a payload nested too deep",
      [{ task: "bulk__note", payload: { text: JSON.parse("[".repeat(70) + "]".repeat(70)) as unknown } }],
      /jobs\[0\]: the payload for "bulk__note" is nested deeper than 64 levels/,
    ],
    [
      "run_at over a year ahead",
      [{ task: "bulk__note", run_at: "2999-01-01T00:00:00Z" }],
      /jobs\[0\]: run_at .* is more than a year ahead/,
    ],
    [
      "run_at unreadable",
      [{ task: "bulk__note" }, { task: "bulk__note", run_at: "soon" }],
      /jobs\[1\] has a run_at PostgreSQL cannot read \(soon\)/,
    ],
    [
      "max_attempts out of range",
      [{ task: "bulk__note", max_attempts: 101 }],
      /jobs\[0\]: max_attempts must be between 1 and 100, got 101/,
    ],
    [
      "priority out of range",
      [{ task: "bulk__note", priority: -1001 }],
      /jobs\[0\]: priority must be between -1000 and 1000, got -1001/,
    ],
    [
      "one key twice",
      [
        { task: "bulk__note", job_key: "k" },
        { task: "bulk__note", job_key: "k" },
      ],
      /jobs\[0\] and jobs\[1\] have the same job_key "k"/,
    ],
  ])("refuses %s, naming the job, and enqueues nothing", async (_what, jobsJson, says) => {
    await clear();
    await expect(run(jobsJson)).rejects.toThrow(says);
    expect(await queued()).toEqual([]);
  });

  it("pgjobs.enqueue keeps its messages (0009 rewrote it)", async () => {
    const deep = JSON.parse("[".repeat(70) + "]".repeat(70)) as unknown;
    await expect(
      sql`select pgjobs.enqueue('bulk__note', ${JSON.stringify({ text: deep })}::jsonb)`.execute(database().db),
    ).rejects.toThrow('pgjobs.enqueue: the payload for "bulk__note" is nested deeper than 64 levels');
    const shallow = JSON.parse("[".repeat(60) + "]".repeat(60)) as unknown;
    await expect(
      sql`select pgjobs.enqueue('bulk__note', ${JSON.stringify({ text: shallow })}::jsonb)`.execute(database().db),
    ).resolves.toBeTruthy();
  });
});

describe("pgjobs.enqueue_many for a granted Supabase role", () => {
  function show(outcome: Outcome): string {
    return outcome.ok ? `allowed ${outcome.rows.length}` : `${outcome.code} ${outcome.message}`;
  }
  const batch = (task: string, count: number, extra: Record<string, unknown> = {}) =>
    `select * from pgjobs.enqueue_many('${JSON.stringify(
      Array.from({ length: count }, (_, i) => ({ task, payload: { text: `t${i}` }, ...extra })),
    )}')`;

  it("may batch only the tasks it is granted, within the grant's limits per job", async () => {
    expect(show(await api.request(asUser, batch("bulk__mail", 1)))).toMatch(
      /^42501 pgjobs\.enqueue_many: jobs\[0\]: role authenticated may not enqueue task "bulk__mail": it has no grant for it/,
    );
    expect(show(await api.request(asUser, batch("bulk__note", 2, { priority: -1 })))).toMatch(
      /^42501 pgjobs\.enqueue_many: jobs\[0\]: priority -1 would run ahead of other jobs/,
    );
    expect(show(await api.request(asUser, batch("bulk__note", 1, { queue: "vip" })))).toMatch(
      /^42501 pgjobs\.enqueue_many: jobs\[0\]: queue "vip" is not granted/,
    );
    expect(show(await api.request({ role: "anon" }, batch("bulk__note", 1)))).toMatch(
      /^42501 permission denied for (schema pgjobs|function enqueue_many)/,
    );
  });

  it("counts every job of a batch against the per-minute limit, and charges nothing for a refused batch", async () => {
    await clear();
    expect(show(await api.request(asUser, batch("bulk__note", 6)))).toMatch(
      new RegExp(
        `^PT429 pgjobs\\.enqueue_many: rate limit: uid=${USER} may enqueue 5 jobs of "bulk__note" per minute .*; 0 already this minute`,
      ),
    );
    expect(show(await api.request(asUser, batch("bulk__note", 3)))).toBe("allowed 3");
    expect(show(await api.request(asUser, batch("bulk__note", 3)))).toMatch(/^PT429 .*; 3 already this minute/);
    expect(show(await api.request(asUser, batch("bulk__note", 2)))).toBe("allowed 2");
    expect(show(await api.request(asUser, batch("bulk__note", 1)))).toMatch(/^PT429 /);
    expect(await queued()).toHaveLength(5);
  });

  it("refuses a batch over the limit before checking its jobs one by one (a flood costs no per-job work)", async () => {
    await clear();
    // A new minute for this caller: the tests above spent this one.
    await sql`delete from pgjobs.enqueue_counters where task = 'bulk__note'`.execute(database().db);
    const jobs = Array.from({ length: 50 }, (_, i) => ({
      task: "bulk__note",
      payload: { text: `t${i}` },
      ...(i === 30 && { queue: "vip" }),
    }));
    // Job 30's queue is not granted, but the count is refused first: the per-job checks never ran.
    expect(show(await api.request(asUser, `select * from pgjobs.enqueue_many('${JSON.stringify(jobs)}')`))).toMatch(
      /^PT429 pgjobs\.enqueue_many: rate limit: .* may enqueue 5 jobs of "bulk__note" per minute .*; 0 already this minute/,
    );
    // Refusals re-raised from the grant check carry no empty DETAIL or HINT (PostgREST would send "").
    const refused = await api.request(asUser, `select * from pgjobs.enqueue_many('${JSON.stringify(jobs)}')`);
    expect(refused).toMatchObject({ ok: false, code: "PT429" });
    expect(refused.ok ? undefined : [refused.detail, refused.hint]).not.toContain("");
    // Within the limit, the same bad job is found and named.
    expect(
      show(await api.request(asUser, `select * from pgjobs.enqueue_many('${JSON.stringify(jobs.slice(28, 32))}')`)),
    ).toMatch(/^42501 pgjobs\.enqueue_many: jobs\[2\]: queue "vip" is not granted/);
    expect(await queued()).toHaveLength(0);
  });

  it("a granted caller's job keys are scoped to it, as with pgjobs.enqueue", async () => {
    const outcome = await api.tryInRequest({ role: "authenticated", claims: userClaims(USER.replace("e", "f")) }, [
      `select key from pgjobs.enqueue_many('[{"task":"bulk__note","payload":{"text":"k"},"job_key":"mine"}]')`,
    ]);
    expect(outcome[0]).toMatchObject({ ok: true, rows: [{ key: `uid=${USER.replace("e", "f")}/mine` }] });
  });

  it("revoke_enqueue takes enqueue_many back with the role's last grant; grant_enqueue gives it", async () => {
    const { rows } = await sql<{ can: boolean }>`
      select has_function_privilege('authenticated', 'pgjobs.enqueue_many(jsonb, text)', 'execute') as can`.execute(
      database().db,
    );
    expect(rows[0]!.can).toBe(true);
    await sql`select pgjobs.revoke_enqueue('authenticated', 'bulk__note')`.execute(database().db);
    const after = await sql<{ can: boolean; one: boolean }>`
      select has_function_privilege('authenticated', 'pgjobs.enqueue_many(jsonb, text)', 'execute') as can,
             has_function_privilege('authenticated', 'pgjobs.enqueue(text, jsonb, timestamptz, text, text, integer, integer)', 'execute') as one`.execute(
      database().db,
    );
    expect(after.rows[0]).toEqual({ can: false, one: false });
    await sql`select pgjobs.grant_enqueue('authenticated', 'bulk__note', per_minute => 5)`.execute(database().db);
  });
});

describe("a queue name longer than graphile-worker's 128 characters (0012)", () => {
  const queue = "q".repeat(129);
  const says = /queue name "q{40}…" is 129 characters; graphile-worker allows at most 128/;

  it.each([
    ["jobs.enqueue", () => jobs.enqueue(database().db, "bulk__note", { text: "x" }, { queue })],
    [
      "jobs.enqueueMany",
      () => jobs.enqueueMany(database().db, [{ task: "bulk__note", payload: { text: "x" }, options: { queue } }]),
    ],
    [
      "pgjobs.enqueue",
      () => sql`select pgjobs.enqueue('bulk__note', '{"text": "x"}', queue => ${queue})`.execute(database().db),
    ],
    [
      "pgjobs.enqueue_many",
      () =>
        sql`select * from pgjobs.enqueue_many(${JSON.stringify([{ task: "bulk__note", payload: { text: "x" }, queue }])}::jsonb)`.execute(
          database().db,
        ),
    ],
    [
      "graphile_worker.add_job",
      () =>
        sql`select graphile_worker.add_job('bulk__note', '{"text": "x"}', queue_name => ${queue})`.execute(
          database().db,
        ),
    ],
  ])("is refused in words by %s, and nothing is enqueued", async (_door, enqueue) => {
    await clear();
    await expect(enqueue()).rejects.toThrow(says);
    expect(await queued()).toEqual([]);
  });

  it("a name of exactly 128 characters is a queue like any other", async () => {
    await clear();
    const [job] = await jobs.enqueueMany(database().db, [
      { task: "bulk__note", payload: { text: "x" }, options: { queue: "q".repeat(128) } },
    ]);
    expect(job!.queue).toBe("q".repeat(128));
  });
});
