/**
 * A task's maxAttempts and queue hold for jobs pgjobs did not enqueue itself: fired by the
 * crontab, or inserted through graphile-worker's add_job, add_jobs and quickAddJob. A caller's
 * own values win.
 */
import { quickAddJob } from "graphile-worker";
import { sql } from "kysely";
import { beforeAll, describe, expect, it } from "vitest";
import { appJobs } from "./support/app.ts";
import { syncTaskRegistry } from "../src/enqueue/sql-allowlist.ts";
import { appTasks } from "./support/app.ts";
import { faultTasks, optionsTask } from "./fixtures/fault-tasks.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

beforeAll(async () => {
  await syncTaskRegistry(database().db, [...faultTasks, ...appTasks]);
});

async function jobOptions(id: string) {
  const { rows } = await sql<{ max_attempts: number; queue_name: string | null }>`
    select max_attempts, queue_name from graphile_worker.jobs where id = ${id}::bigint`.execute(database().db);
  return rows[0];
}

describe("a task's options hold for jobs inserted by graphile-worker's own doors", () => {
  it("add_job, add_jobs and quickAddJob without options get the task's maxAttempts and queue", async () => {
    const { db, pool } = database();
    const { rows: single } = await sql<{ id: string }>`
      select (graphile_worker.add_job('fault__options', '{}'::json)).id`.execute(db);
    const { rows: batch } = await sql<{ id: string }>`
      select id from graphile_worker.add_jobs(array[('fault__options', '{}'::json, null, null, null, null, null, null)::graphile_worker.job_spec])`.execute(
      db,
    );
    const quick = await quickAddJob({ pgPool: pool }, "fault__options", {});
    for (const id of [single[0]!.id, batch[0]!.id, quick.id]) {
      expect(await jobOptions(id)).toEqual({ max_attempts: 3, queue_name: "fault_options" });
    }
    expect(optionsTask.options).toMatchObject({ maxAttempts: 3, queue: "fault_options" });
  });

  it("a caller's own max_attempts and queue win, including an explicit 25 through enqueue()", async () => {
    const { db } = database();
    const { rows } = await sql<{ id: string }>`
      select (graphile_worker.add_job('fault__options', '{}'::json, queue_name => 'elsewhere', max_attempts => 7)).id`.execute(
      db,
    );
    expect(await jobOptions(rows[0]!.id)).toEqual({ max_attempts: 7, queue_name: "elsewhere" });
    // pgjobs__ping declares maxAttempts 3; 25 asked for explicitly stays 25.
    const job = await appJobs.enqueue(db, "pgjobs__ping", { message: "twenty-five" }, { maxAttempts: 25 });
    expect(job.maxAttempts).toBe(25);
    const { rows: flags } = await sql<{ flags: unknown }>`
      select flags from graphile_worker._private_jobs where id = ${job.id}::bigint`.execute(db);
    expect(flags[0]!.flags).toBeNull();
  });

  it("a crontab-fired job runs with the task's maxAttempts and queue (fired by backfill, at any wall-clock time)", async () => {
    const { db } = database();
    // Known for 10 minutes and never run: on start the worker backfills the ticks within fill=5m.
    await sql`insert into graphile_worker._private_known_crontabs (identifier, known_since, last_execution)
              values ('fault_options_every_minute', now() - interval '10 minutes', null)`.execute(db);
    await startWorker(database(), {
      tasks: faultTasks,
      crontab: "* * * * * fault__options ?id=fault_options_every_minute&fill=5m",
    });
    const attempt = await waitFor("a crontab-fired attempt", () =>
      db
        .selectFrom("pgjobs.job_runs")
        .select(["max_attempts", "queue", "state"])
        .where("task", "=", "fault__options")
        .where(sql<boolean>`payload::jsonb ? '_cron'`)
        .executeTakeFirst(),
    );
    expect(attempt).toEqual({ max_attempts: 3, queue: "fault_options", state: "failed" });
  });
});
