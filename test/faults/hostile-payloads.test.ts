/**
 * Payloads PostgreSQL cannot hold as text or jsonb (a NUL, a lone surrogate), or that no one
 * should have to (20 MB, 10,000 levels deep), through every door. Where pgjobs owns the door
 * (enqueue(), `pgjobs add`, pgjobs.enqueue) they are refused, naming the field; where it does
 * not (graphile_worker.add_job, quickAddJob) a payload over the task's cap is refused by a trigger
 * when it is inserted, and the rest are rejected when they run, and recorded. In every case the
 * worker keeps running, and jobs enqueued after them all succeed.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { quickAddJob } from "graphile-worker";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidPayloadError } from "../../src/enqueue/enqueue.ts";
import { cancelJob } from "../../src/enqueue/job-actions.ts";
import { syncTaskRegistry } from "../../src/enqueue/sql-allowlist.ts";
import { waitForResult } from "../../src/history/wait-for-result.ts";
import { appJobs, appTasks } from "../support/app.ts";
import { faultTasks } from "../fixtures/fault-tasks.ts";
import { cleanEnv, runCli } from "../support/cli.ts";
import { useTestDatabase } from "../support/database.ts";
import { waitFor } from "../support/wait.ts";
import { type WorkerProcess, useWorkerProcesses } from "./worker-process.ts";

const database = useTestDatabase();
const startWorker = useWorkerProcesses();
let worker: WorkerProcess;
let scratch: string;

const deepText = `${"[".repeat(10_000)}${"]".repeat(10_000)}`;
/** Each hostile value, as the `note` field's JSON text, and what the refusal must say. */
const hostile = {
  "a NUL character": { noteJson: JSON.stringify("a\u0000b"), says: /NUL/ },
  "a lone surrogate (text cut mid-emoji)": { noteJson: JSON.stringify(`cut ${"😀".slice(0, 1)}`), says: /surrogate/ },
  "20 MB": { noteJson: JSON.stringify("x".repeat(20 * 1024 * 1024)), says: /bytes/ },
  "10,000 levels of nesting": { noteJson: deepText, says: /nested deeper than 64/ },
};
const cases = Object.entries(hostile);

beforeAll(async () => {
  await syncTaskRegistry(database().db, [...faultTasks, ...appTasks]);
  scratch = await mkdtemp(path.join(os.tmpdir(), "pgjobs-hostile-"));
  worker = await startWorker(database().url);
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe("doors pgjobs owns refuse what cannot be stored, naming the field", () => {
  it.each(cases)("enqueue() refuses %s", async (_name, { noteJson, says }) => {
    // pgjobs__ping's message is a string: enqueue() validates against the app's own task list.
    const attempt = appJobs.enqueue(database().db, "pgjobs__ping", { message: JSON.parse(noteJson) as string });
    await expect(attempt).rejects.toThrow(InvalidPayloadError);
    // A string over the schema's 1,000 characters, or not a string at all, is refused by the schema first.
    await expect(attempt).rejects.toThrow(new RegExp(`${says.source}|too big|expected string`, "i"));
    await expect(attempt).rejects.toThrow(/message/);
  });

  it.each(cases)(
    "`pgjobs add` refuses %s (payload from a file) with exit 1, naming the field",
    async (_name, { noteJson, says }) => {
      const file = path.join(scratch, "payload.json");
      // pgjobs__ping's message is a string: the CLI runs the app's own task list.
      await writeFile(file, `{"message":${noteJson}}`);
      const result = await runCli(["add", "pgjobs__ping", `@${file}`], cleanEnv({ DATABASE_URL: database().url }));
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/message/);
      // A string over the schema's 1,000 characters, or not a string at all, is refused by the schema first.
      expect(result.stderr).toMatch(new RegExp(`${says.source}|too big|expected string`, "i"));
      expect(result.stdout).toBe("");
    },
  );

  it.each(cases)("pgjobs.enqueue refuses %s", async (_name, { noteJson }) => {
    const attempt = sql`select pgjobs.enqueue('fault__echo', ${`{"note":${noteJson}}`}::jsonb)`.execute(database().db);
    const error = (await attempt.then(
      () => undefined,
      (caught: unknown) => caught,
    )) as { message: string; where?: string } | undefined;
    expect(error, "pgjobs.enqueue accepted it").toBeDefined();
    // jsonb itself refuses a NUL or a lone surrogate, pointing at where in the JSON; the function
    // refuses the size and the depth.
    expect(`${error!.message} ${error!.where ?? ""}`).toMatch(/note|Unicode|nested deeper than 64|bytes; the cap is/);
  });
});

describe("doors pgjobs does not own: the job is refused at insert over its cap, else rejected when it runs, and recorded", () => {
  const addedJobs: Array<{ name: string; id: string }> = [];
  let largeJobId: string;

  beforeAll(async () => {
    for (const [name, { noteJson }] of cases) {
      if (name === "20 MB") {
        // Over fault__echo's cap (64 KiB): the trigger on graphile-worker's table refuses the insert.
        const overCap = /the payload of a "fault__echo" job is \d+ bytes, over the task's cap of 65536 bytes/;
        await expect(
          sql`select graphile_worker.add_job('fault__echo', ${`{"note":${noteJson}}`}::json)`.execute(database().db),
        ).rejects.toThrow(overCap);
        await expect(
          quickAddJob({ pgPool: database().pool }, "fault__echo", { note: JSON.parse(noteJson) as unknown }),
        ).rejects.toThrow(overCap);
        continue;
      }
      const { rows } = await sql<{ id: string }>`
        select (graphile_worker.add_job('fault__echo', ${`{"note":${noteJson}}`}::json)).id`.execute(database().db);
      addedJobs.push({ name: `add_job: ${name}`, id: rows[0]!.id });
      const note = JSON.parse(noteJson) as unknown;
      if (noteJson === deepText) {
        // JavaScript's own JSON.stringify cannot serialise it: quickAddJob fails in the caller.
        await expect(quickAddJob({ pgPool: database().pool }, "fault__echo", { note })).rejects.toThrow(RangeError);
        continue;
      }
      const job = await quickAddJob({ pgPool: database().pool }, "fault__echo", { note });
      addedJobs.push({ name: `quickAddJob: ${name}`, id: job.id });
    }
    // Within a task's own larger cap, a big payload is queued; history keeps at most 64 KiB of it.
    const large = await quickAddJob({ pgPool: database().pool }, "fault__echo_large", { note: "x".repeat(200_000) });
    largeJobId = large.id;
  });

  it("rejects each one once, naming what is wrong, and keeps history bounded", async () => {
    for (const job of addedJobs) {
      const outcome = await waitForResult(database().pool, job.id, { timeoutMs: 30_000 });
      expect(outcome.state, job.name).toBe("rejected");
      expect(outcome.error?.message, job.name).toMatch(/invalid payload/);
    }
    const runs = await database()
      .db.selectFrom("pgjobs.job_runs")
      .select(["job_id", "state", "payload_truncated", "error_message"])
      .where(
        "job_id",
        "in",
        addedJobs.map((job) => job.id),
      )
      .execute();
    expect(runs).toHaveLength(addedJobs.length);
    for (const run of runs) expect(run.state).toBe("rejected");
    expect(runs.filter((run) => run.payload_truncated)).toEqual([]);
    expect(await waitForResult(database().pool, largeJobId, { timeoutMs: 30_000 })).toMatchObject({
      state: "succeeded",
    });
    const large = await database()
      .db.selectFrom("pgjobs.job_runs")
      .select(["payload", "payload_truncated", "payload_bytes"])
      .where("job_id", "=", largeJobId)
      .executeTakeFirstOrThrow();
    // Not copied into history: 200 KB is over history's 64 KiB bound.
    expect(large).toMatchObject({ payload: null, payload_truncated: true });
    expect(large.payload_bytes).toBeGreaterThan(200_000);
    for (const [name, { says }] of cases) {
      const ids = addedJobs.filter((job) => job.name.endsWith(name)).map((job) => job.id);
      for (const run of runs.filter((row) => ids.includes(row.job_id))) expect(run.error_message, name).toMatch(says);
    }
  }, 90_000);

  it("reads and operator actions on those jobs still work", async () => {
    const { db } = database();
    await sql`select * from pgjobs.task_summary()`.execute(db);
    await sql`select * from pgjobs.runs`.execute(db);
    await sql`select * from pgjobs.job_status`.execute(db);
    // Rejected jobs stay in the queue, visible; a person can cancel them all.
    for (const job of addedJobs) await cancelJob(db, job.id);
    const { rows } = await sql<{ n: string }>`
      select count(*) as n from pgjobs.job_runs where state = 'cancelled'`.execute(db);
    expect(Number(rows[0]!.n)).toBe(addedJobs.length);
  }, 30_000);

  it("the worker is still running, and 100 ordinary jobs enqueued after all of it succeed", async () => {
    const { db } = database();
    expect(worker.child.exitCode).toBeNull();
    await sql`select graphile_worker.add_job('fault__noop', json_build_object('n', n)) from generate_series(1, 100) n`.execute(
      db,
    );
    await waitFor(
      "the 100 jobs",
      async () => {
        const { rows } = await sql<{ n: string }>`
          select count(*) as n from pgjobs.job_runs where task = 'fault__noop' and state = 'succeeded'`.execute(db);
        return rows[0]!.n === "100" ? true : undefined;
      },
      { timeoutMs: 30_000 },
    );
    // Payloads never reach the log: the hostile ones and 200 KB went through this worker, its output stays small.
    expect(worker.output().length).toBeLessThan(200_000);
  }, 60_000);
});
