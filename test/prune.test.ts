import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { appJobs } from "./support/app.ts";
import { pruneHistory, retentionSchema } from "../src/history/prune.ts";
import { useTestDatabase } from "./support/database.ts";

const database = useTestDatabase();

async function insertRun(jobId: string, state: string, finishedDaysAgo: number | null) {
  await sql`
    insert into pgjobs.job_runs (job_id, task, attempt, max_attempts, state, started_at, finished_at)
    values (${jobId}::bigint, 'pgjobs__ping', 1, 3, ${state},
            now() - make_interval(days => ${(finishedDaysAgo ?? 0) + 1}),
            case when ${finishedDaysAgo}::int is null then null else now() - make_interval(days => ${finishedDaysAgo}::int) end)`.execute(
    database().db,
  );
}

describe("pruneHistory", () => {
  it("deletes only finished runs older than their state's age, in batches, and leaves the queue alone", async () => {
    const { db } = database();
    // Finished jobs (not in the queue any more): ids far from graphile-worker's sequence.
    for (let i = 0; i < 25; i++) await insertRun(String(900_000 + i), "succeeded", 10); // old: pruned
    await insertRun("910000", "succeeded", 3); // younger than 7 days: kept
    await insertRun("910001", "failed", 10); // failed keeps 30 days: kept
    await insertRun("910002", "failed", 45); // pruned
    await insertRun("910003", "running", null); // running: never touched
    // A live job with an old failed attempt: kept while the job is in the queue.
    const live = await appJobs.enqueue(
      db,
      "pgjobs__ping",
      { message: "still queued" },
      { runAt: new Date(Date.now() + 86_400_000) },
    );
    await insertRun(live.id, "failed", 60);
    const queueBefore = await sql<{ id: string; payload: unknown }>`
      select id, payload from graphile_worker._private_jobs order by id`.execute(db);

    const outcome = await pruneHistory(db, retentionSchema.parse({}), { batchSize: 10, maxBatches: 100 });
    expect(outcome).toEqual({ deleted: 26, batches: 3 });

    const left = await db.selectFrom("pgjobs.job_runs").select(["job_id", "state"]).orderBy("job_id").execute();
    expect(left).toEqual(
      [
        { job_id: live.id, state: "failed" },
        { job_id: "910000", state: "succeeded" },
        { job_id: "910001", state: "failed" },
        { job_id: "910003", state: "running" },
      ].sort((a, b) => Number(a.job_id) - Number(b.job_id)),
    );
    const queueAfter = await sql<{ id: string; payload: unknown }>`
      select id, payload from graphile_worker._private_jobs order by id`.execute(db);
    expect(queueAfter.rows).toEqual(queueBefore.rows);
  });

  it("refuses an age it cannot read, naming the state", () => {
    const parsed = retentionSchema.safeParse({ failed: "a fortnight" });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]).toMatchObject({
      path: ["failed"],
      message: expect.stringContaining('"30 days"') as string,
    });
  });
});
