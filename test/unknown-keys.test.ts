/**
 * A typo'd payload field must not vanish: keys the task's schema does not declare are refused at
 * every door pgjobs owns (enqueue(), `pgjobs add`, the worker for what came through other doors),
 * unless the task allows them. graphile-worker's cron `_cron` key always passes.
 */
import { sql } from "kysely";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { findUnknownKeys } from "../src/enqueue/unknown-keys.ts";
import { createPgJobs, defineTask, InvalidPayloadError, waitForResult } from "../src/index.ts";
import { syncTaskRegistry } from "../src/enqueue/sql-allowlist.ts";
import { cleanEnv, runCli } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

const strictTask = defineTask({
  name: "keys__strict",
  payload: z.object({ dryRun: z.boolean().default(false), target: z.object({ id: z.string() }).optional() }),
  run: (payload) => Promise.resolve(payload),
});
const openTask = defineTask({
  name: "keys__open",
  payload: z.object({ dryRun: z.boolean().default(false) }),
  options: { allowUnknownKeys: true },
  run: (payload) => Promise.resolve(payload),
});
const looseTask = defineTask({
  name: "keys__loose",
  payload: z.looseObject({ dryRun: z.boolean().default(false) }),
  run: (payload) => Promise.resolve(payload),
});
const tasks = [strictTask, openTask, looseTask] as const;
const jobs = createPgJobs({ tasks });

beforeAll(async () => {
  await syncTaskRegistry(database().db, tasks);
});

describe("which keys are unknown", () => {
  const schema = z.object({
    a: z.string(),
    nested: z.object({ b: z.number() }).optional(),
    list: z.array(z.object({ c: z.number() })).default([]),
    either: z.union([z.object({ kind: z.literal("x") }), z.object({ kind: z.literal("y"), y: z.number() })]).optional(),
    open: z.looseObject({}).optional(),
    map: z.record(z.string(), z.object({ d: z.number() })).optional(),
    typed: z
      .object({ e: z.number() })
      .catchall(z.object({ f: z.number() }))
      .optional(),
    piped: z
      .object({ g: z.string() })
      .transform((value) => value.g)
      .optional(),
  });

  it("finds them at any depth, through optional, default, arrays, unions, records, catchall and pipes", () => {
    const payload = {
      a: "x",
      dryrun: true,
      nested: { b: 1, bb: 2 },
      list: [{ c: 1 }, { c: 2, cc: 3 }],
      either: { kind: "x", y: 1 },
      open: { anything: true },
      map: { k: { d: 1, dd: 2 } },
      typed: { e: 1, extra: { f: 1, ff: 2 } },
      piped: { g: "s", gg: "t" },
    };
    expect(schema.safeParse(payload).success).toBe(true);
    expect(findUnknownKeys(schema, payload)).toEqual([
      { path: [], keys: ["dryrun"] },
      { path: ["nested"], keys: ["bb"] },
      { path: ["list", 1], keys: ["cc"] },
      // the first option that accepts it, as zod chooses
      { path: ["either"], keys: ["y"] },
      { path: ["map", "k"], keys: ["dd"] },
      { path: ["typed", "extra"], keys: ["ff"] },
      { path: ["piped"], keys: ["gg"] },
    ]);
  });

  it("lets graphile-worker's _cron through at the top level only", () => {
    const cronPayload = { a: "x", _cron: { ts: "2030-01-01T00:00:00Z", backfilled: false } };
    expect(findUnknownKeys(schema, cronPayload)).toEqual([]);
    expect(findUnknownKeys(schema, { a: "x", nested: { b: 1, _cron: {} } })).toEqual([
      { path: ["nested"], keys: ["_cron"] },
    ]);
  });
});

describe("the doors pgjobs owns refuse them", () => {
  it("enqueue() refuses an unknown key, naming it and the opt-out, and enqueues nothing", async () => {
    const attempt = jobs.enqueue(database().db, "keys__strict", { dryrun: true } as never);
    await expect(attempt).rejects.toBeInstanceOf(InvalidPayloadError);
    await expect(attempt).rejects.toThrow(/Unrecognized key: "dryrun"[\s\S]*allowUnknownKeys/);
    const nested = jobs.enqueue(database().db, "keys__strict", { target: { id: "1", idd: "2" } } as never);
    await expect(nested).rejects.toThrow(/Unrecognized key: "idd"[\s\S]*→ at target/);
    const { rows } = await sql<{ n: string }>`
      select count(*) as n from graphile_worker.jobs where task_identifier = 'keys__strict'`.execute(database().db);
    expect(rows[0]!.n).toBe("0");
  });

  it("validate() and enqueueMany() refuse them too", async () => {
    expect(() => jobs.validate("keys__strict", { dryRun: true, extra: 1 })).toThrow(/Unrecognized key: "extra"/);
    await expect(
      jobs.enqueueMany(database().db, [
        { task: "keys__strict", payload: {} },
        { task: "keys__strict", payload: { nope: 1 } as never },
      ]),
    ).rejects.toThrow(/Unrecognized key: "nope"/);
  });

  it("a task that allows unknown keys, or a loose schema, takes them", async () => {
    const open = await jobs.enqueue(database().db, "keys__open", { dryRun: true, extra: 1 } as never);
    const loose = await jobs.enqueue(database().db, "keys__loose", { dryRun: true, extra: 1 });
    expect(open.id).toBeTruthy();
    expect(loose.id).toBeTruthy();
  });

  it("`pgjobs add` refuses an unknown key with exit 1, naming it", async () => {
    // The CLI runs the repository's app (pgjobs.config.ts): pgjobs__ping takes { message }.
    const result = await runCli(
      ["add", "pgjobs__ping", '{"message":"hi","mesage":"typo"}'],
      cleanEnv({ DATABASE_URL: database().url }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Unrecognized key: "mesage"');
    expect(result.stdout).toBe("");
  });

  it("the worker rejects a job that came through another door with an unknown key, and runs the allowed ones", async () => {
    const { db } = database();
    const { rows } = await sql<{ strict: string; open: string; cron: string }>`
      select (graphile_worker.add_job('keys__strict', '{"dryrun":true}')).id as strict,
             (graphile_worker.add_job('keys__open', '{"dryRun":true,"extra":1}')).id as open,
             (graphile_worker.add_job('keys__strict', '{"_cron":{"ts":"2030-01-01T00:00:00Z","backfilled":false}}')).id as cron`.execute(
      db,
    );
    await startWorker(database(), { tasks });
    const strict = await waitForResult(database().pool, rows[0]!.strict, { timeoutMs: 20_000 });
    expect(strict.state).toBe("rejected");
    expect(strict.error?.message).toMatch(/invalid payload[\s\S]*Unrecognized key: "dryrun"/);
    const open = await waitForResult(database().pool, rows[0]!.open, { timeoutMs: 20_000 });
    expect(open).toMatchObject({ state: "succeeded", result: { dryRun: true } });
    const cron = await waitForResult(database().pool, rows[0]!.cron, { timeoutMs: 20_000 });
    expect(cron).toMatchObject({ state: "succeeded", result: { dryRun: false } });
  });
});
