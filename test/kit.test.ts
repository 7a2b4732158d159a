/**
 * The test kit an app's own tests use (pgjobs/testing), used here as an app would: through the
 * public doors only, with the app's own tasks.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createPgJobs, defineTask, InvalidPayloadError, type TaskContext } from "../src/index.ts";
import { createTestKit, DrainLimitError, installTestClock } from "../src/testing/index.ts";
import { syncTaskRegistry } from "../src/enqueue/sql-allowlist.ts";
import type { TestTables } from "./support/app.ts";
import { useTestDatabase } from "./support/database.ts";
import { useWorkers } from "./support/worker.ts";
import { waitFor } from "./support/wait.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

const stampTask = defineTask({
  name: "kit__stamp",
  payload: z.object({ when: z.string() }),
  run: (payload) => Promise.resolve({ received: payload.when, type: typeof payload.when }),
});

/** Enqueues the next link of a chain until `left` reaches 0: the chains drainJobs must follow. */
const chainTask = defineTask({
  name: "kit__chain",
  payload: z.object({ left: z.number().int().min(0) }),
  options: { transactional: true },
  async run(payload, ctx: TaskContext<TestTables>) {
    await ctx.db
      .insertInto("public.effects")
      .values({ message: `chain ${payload.left}`, job_id: ctx.job.id })
      .execute();
    if (payload.left > 0) await app.enqueue(ctx.db, "kit__chain", { left: payload.left - 1 });
    return null;
  },
});

const app = createPgJobs({ tasks: [stampTask, chainTask] as const });
const kit = createTestKit(app);

describe("runInline", () => {
  it("runs a task now, after the JSON round trip a queued payload makes, and returns its result", async () => {
    const { db } = database();
    // A Date does not survive the queue: it arrives as a string, and runInline says so too.
    const when = new Date("2030-01-01T00:00:00Z");
    expect(await kit.runInline(db, "kit__stamp", { when: when as unknown as string })).toEqual({
      received: "2030-01-01T00:00:00.000Z",
      type: "string",
    });
    await expect(kit.runInline(db, "kit__stamp", {} as never)).rejects.toBeInstanceOf(InvalidPayloadError);
  });
});

describe("assertEnqueued and assertNotEnqueued", () => {
  it("see what the code under test queued inside its own transaction, before it commits", async () => {
    const { db } = database();
    await syncTaskRegistry(db, app.tasks);
    await db
      .transaction()
      .execute(async (trx) => {
        await app.enqueue(trx, "kit__stamp", { when: "inside" });
        const job = await kit.assertEnqueued(trx, "kit__stamp", { when: "inside" });
        expect(job.payload).toEqual({ when: "inside" });
        await expect(kit.assertNotEnqueued(trx, "kit__stamp", { when: "inside" })).rejects.toThrow(
          'Expected no queued "kit__stamp" job with payload containing {"when":"inside"}; found job',
        );
        // @ts-expect-error: the kit is typed by the app's tasks: an unknown name does not compile
        await expect(kit.assertEnqueued(trx, "kit__stmap")).rejects.toThrow("no job for that task is queued");
        throw new Error("roll back");
      })
      .catch(() => {});
    // Rolled back: outside, nothing was queued.
    await kit.assertNotEnqueued(db, "kit__stamp", { when: "inside" });
    await expect(kit.assertEnqueued(db, "kit__stamp", { when: "inside" })).rejects.toThrow(
      "no job for that task is queued",
    );
  });
});

describe("drainJobs", () => {
  it("runs the due jobs and the jobs they enqueue, up to a bound", async () => {
    const { db, pool } = database();
    await syncTaskRegistry(db, app.tasks);
    await app.enqueue(db, "kit__chain", { left: 3 });
    expect(await kit.drainJobs(pool)).toEqual({ succeeded: 4 });
    const links = await db.selectFrom("public.effects").select("message").where("message", "like", "chain %").execute();
    expect(links.map((row) => row.message).sort()).toEqual(["chain 0", "chain 1", "chain 2", "chain 3"]);

    // A chain longer than the bound stops with an error that says so; the rest stays queued.
    await app.enqueue(db, "kit__chain", { left: 5 });
    await expect(kit.drainJobs(pool, { maxJobs: 2 })).rejects.toThrow(DrainLimitError);
    expect((await kit.findEnqueued(db, "kit__chain")).length).toBe(1);
  });
});

describe("a test clock", () => {
  it("decides when a job is due, for workers started with useNodeTime", async () => {
    const { db } = database();
    await syncTaskRegistry(db, app.tasks);
    const clock = installTestClock(new Date("2030-06-01T12:00:00Z"));
    try {
      const job = await app.enqueue(
        db,
        "kit__stamp",
        { when: "at noon and a minute" },
        {
          runAt: new Date("2030-06-01T12:01:00Z"),
        },
      );
      const canary = await app.enqueue(
        db,
        "kit__stamp",
        { when: "a minute before noon" },
        {
          runAt: new Date("2030-06-01T11:59:00Z"),
        },
      );
      await startWorker(database(), { tasks: app.tasks, useNodeTime: true });
      // The worker ran what is due by the test clock (the database's clock says 2030 is years
      // away: only the test clock makes the canary due) and left the job a minute ahead.
      await waitFor("the canary to run", async () => {
        const left = await kit.findEnqueued(db, "kit__stamp");
        return left.some((row) => row.id === canary.id) ? undefined : true;
      });
      expect((await kit.findEnqueued(db, "kit__stamp")).map((row) => row.id)).toContain(job.id);
      clock.advance(60_000);
      await waitFor("the job to run once the clock reaches its run_at", async () => {
        const left = await kit.findEnqueued(db, "kit__stamp");
        return left.some((row) => row.id === job.id) ? undefined : true;
      });
    } finally {
      clock.uninstall();
    }
  });
});
