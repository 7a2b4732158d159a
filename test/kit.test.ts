import { describe, expect, it } from "vitest";
import { enqueue, InvalidPayloadError } from "../src/enqueue/enqueue.ts";
import { assertEnqueued, drainQueue, findEnqueued, runInline } from "../src/testing/kit.ts";
import { useTestDatabase } from "./support/database.ts";

const database = useTestDatabase();

describe("the test kit", () => {
  it("runInline runs a task now and returns its result, like Celery's apply()", async () => {
    const { db } = database();
    const result = await runInline(db, "pgjobs__ping", { message: "inline" });
    expect(result).toEqual({ message: "inline", pingId: expect.any(String) as string });
    const rows = await db.selectFrom("pgjobs.pings").select("message").where("message", "=", "inline").execute();
    expect(rows).toEqual([{ message: "inline" }]);
    await expect(runInline(db, "pgjobs__ping", { message: "" })).rejects.toBeInstanceOf(InvalidPayloadError);
  });

  it("assertEnqueued finds queued jobs by payload, and says what is queued when it fails", async () => {
    const { db } = database();
    await enqueue(db, "pgjobs__ping", { message: "to drain 1" });
    await enqueue(db, "pgjobs__ping", { message: "to drain 2" });
    const job = await assertEnqueued(db, "pgjobs__ping", { message: "to drain 2" });
    expect(job.payload).toEqual({ message: "to drain 2" });
    await expect(assertEnqueued(db, "pgjobs__ping", { message: "never sent" })).rejects.toThrow(
      'Expected a queued "pgjobs__ping" job with payload containing {"message":"never sent"}; queued payloads were: ',
    );
  });

  it("drainQueue runs every due job through the real runner and reports the outcomes", async () => {
    const { db, pool } = database();
    expect(await drainQueue(pool, db)).toEqual({ succeeded: 2 });
    expect(await findEnqueued(db, "pgjobs__ping")).toEqual([]);
    const drained = await db
      .selectFrom("pgjobs.pings")
      .select("message")
      .where("message", "like", "to drain%")
      .execute();
    expect(drained.map((row) => row.message).sort()).toEqual(["to drain 1", "to drain 2"]);
  });
});
