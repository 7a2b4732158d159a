import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { enqueue, enqueueUnchecked, InvalidPayloadError } from "../src/enqueue/enqueue.ts";
import { UnknownTaskError } from "../src/tasks/index.ts";
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
        await enqueue(trx, "pgjobs__ping", { message: "never" });
        throw new Error("app logic failed after enqueue");
      }),
    ).rejects.toThrow("app logic failed after enqueue");
    expect(await jobCount("pgjobs__ping")).toBe(before);
    const pings = await db.selectFrom("pgjobs.pings").selectAll().where("message", "=", "never").execute();
    expect(pings).toEqual([]);
  });

  it("a job enqueued in a transaction that commits runs and has its effect", async () => {
    const { db } = database();
    const job = await db.transaction().execute((trx) => enqueue(trx, "pgjobs__ping", { message: "committed" }));
    expect(job.taskName).toBe("pgjobs__ping");
    expect(job.maxAttempts).toBe(3); // the task's own option
    await startWorker(database());
    const ping = await waitFor("the ping job's row", async () =>
      db.selectFrom("pgjobs.pings").selectAll().where("job_id", "=", job.id).executeTakeFirst(),
    );
    expect(ping.message).toBe("committed");
    await waitFor("the job to leave the queue", async () =>
      (await jobCount("pgjobs__ping")) === 0 ? true : undefined,
    );
  });
});

describe("enqueue refuses what cannot run", () => {
  it("refuses a bad payload with a message naming the field, and enqueues nothing", async () => {
    const { db } = database();
    const before = await jobCount("pgjobs__ping");
    const attempt = enqueueUnchecked(db, "pgjobs__ping", { message: 42 });
    await expect(attempt).rejects.toBeInstanceOf(InvalidPayloadError);
    await expect(attempt).rejects.toThrow(/pgjobs__ping[\s\S]*expected string[\s\S]*message/);
    expect(await jobCount("pgjobs__ping")).toBe(before);
  });

  it("refuses an unknown task and suggests the closest name", async () => {
    const { db } = database();
    const attempt = enqueueUnchecked(db, "pgjobs__pign", { message: "x" });
    await expect(attempt).rejects.toBeInstanceOf(UnknownTaskError);
    await expect(attempt).rejects.toThrow('Unknown task "pgjobs__pign". Did you mean "pgjobs__ping"?');
  });

  it("a failed enqueue rolls back the caller's transaction with it", async () => {
    const { db } = database();
    await expect(
      db.transaction().execute(async (trx) => {
        await trx.insertInto("pgjobs.pings").values({ message: "app data", job_id: null }).execute();
        await enqueueUnchecked(trx, "pgjobs__ping", {});
      }),
    ).rejects.toBeInstanceOf(InvalidPayloadError);
    const rows = await db.selectFrom("pgjobs.pings").selectAll().where("message", "=", "app data").execute();
    expect(rows).toEqual([]);
  });
});
