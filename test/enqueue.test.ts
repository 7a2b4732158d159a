import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { InvalidPayloadError, UnknownTaskError, waitForResult } from "../src/index.ts";
import { appJobs } from "./support/app.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

async function jobCount(taskName: string): Promise<number> {
  const { rows } = await sql<{ count: string }>`
    select count(*) as count from graphile_worker.jobs where task_identifier = ${taskName}`.execute(database().db);
  return Number(rows[0]?.count);
}

describe("enqueue joins the caller's transaction", () => {
  it("a job enqueued in a transaction that rolls back does not exist", async () => {
    const { db } = database();
    const before = await jobCount("pgjobs__ping");
    await expect(
      db.transaction().execute(async (trx) => {
        await appJobs.enqueue(trx, "pgjobs__ping", { message: "never" });
        throw new Error("app logic failed after enqueue");
      }),
    ).rejects.toThrow("app logic failed after enqueue");
    expect(await jobCount("pgjobs__ping")).toBe(before);
    const pings = await db.selectFrom("public.effects").selectAll().where("message", "=", "never").execute();
    expect(pings).toEqual([]);
  });

  it("a job enqueued in a transaction that commits runs and has its effect", async () => {
    const { db } = database();
    const job = await db.transaction().execute((trx) => appJobs.enqueue(trx, "pgjobs__ping", { message: "committed" }));
    expect(job.taskName).toBe("pgjobs__ping");
    expect(job.maxAttempts).toBe(3); // the task's own option
    await startWorker(database());
    const outcome = await waitForResult(database().pool, job.id, { timeoutMs: 20_000 });
    expect(outcome).toMatchObject({ state: "succeeded", result: { pong: "committed" } });
    await waitFor("the job to leave the queue", async () =>
      (await jobCount("pgjobs__ping")) === 0 ? true : undefined,
    );
  });
});

describe("enqueue refuses what cannot run", () => {
  it("refuses a bad payload with a message naming the field, and enqueues nothing", async () => {
    const { db } = database();
    const before = await jobCount("pgjobs__ping");
    const attempt = appJobs.enqueue(db, "pgjobs__ping", { message: 42 } as never);
    await expect(attempt).rejects.toBeInstanceOf(InvalidPayloadError);
    await expect(attempt).rejects.toThrow(/pgjobs__ping[\s\S]*expected string[\s\S]*message/);
    expect(await jobCount("pgjobs__ping")).toBe(before);
  });

  it("refuses an unknown task and suggests the closest name", async () => {
    const { db } = database();
    const attempt = appJobs.enqueue(db, "pgjobs__pign" as never, { message: "x" } as never);
    await expect(attempt).rejects.toBeInstanceOf(UnknownTaskError);
    await expect(attempt).rejects.toThrow('Unknown task "pgjobs__pign". Did you mean "pgjobs__ping"?');
  });

  it("a failed enqueue rolls back the caller's transaction with it", async () => {
    const { db } = database();
    await expect(
      db.transaction().execute(async (trx) => {
        await trx.insertInto("public.effects").values({ message: "app data", job_id: null }).execute();
        await appJobs.enqueue(trx, "pgjobs__ping", {} as never);
      }),
    ).rejects.toBeInstanceOf(InvalidPayloadError);
    const rows = await db.selectFrom("public.effects").selectAll().where("message", "=", "app data").execute();
    expect(rows).toEqual([]);
  });
});
