/** Tasks, jobs and a dashboard for the dashboard's tests. */
import { sql } from "kysely";
import { z } from "zod";
import { createDashboard, type DashboardOptions } from "../../src/dashboard/index.ts";
import { syncTaskRegistry } from "../../src/enqueue/sql-allowlist.ts";
import { defineTask } from "../../src/tasks/define-task.ts";
import type { TestDatabase } from "../support/database.ts";
import { quietLogger } from "../support/worker.ts";

/** Fails when its payload says so: an edited payload makes it succeed. One attempt, then it stays failed. */
export const flakyTask = defineTask({
  name: "dash__flaky",
  payload: z.object({ fail: z.boolean(), note: z.string().optional() }),
  options: { maxAttempts: 1 },
  run(payload) {
    if (payload.fail) return Promise.reject(new Error(`asked to fail (note: ${payload.note ?? "none"})`));
    return Promise.resolve({ fixed: true, note: payload.note ?? null });
  },
});

export const okTask = defineTask({
  name: "dash__ok",
  payload: z.object({ n: z.number().int().optional() }).loose(),
  run(payload) {
    return Promise.resolve({ n: payload.n ?? null });
  },
});

let releaseHeld: () => void = () => {};
const held = new Promise<void>((resolve) => (releaseHeld = resolve));

/** Runs until releaseHeldJobs() (or its worker stops): a job that is running while pages are looked at. */
export const holdTask = defineTask({
  name: "dash__hold",
  payload: z.object({}).loose(),
  run(_payload, ctx) {
    return new Promise((resolve) => {
      void held.then(() => resolve({ released: true }));
      ctx.signal.addEventListener("abort", () => resolve({ released: false }), { once: true });
    });
  },
});

export function releaseHeldJobs(): void {
  releaseHeld();
}

export const dashboardTasks = [flakyTask, okTask, holdTask];

export const CREDENTIALS = {
  token: "a-test-token-of-32-characters-00",
  basic: { user: "alice", password: "correct horse battery" },
};

export const BASIC = `Basic ${Buffer.from(`${CREDENTIALS.basic.user}:${CREDENTIALS.basic.password}`).toString("base64")}`;

/** Request options that carry the credential: with it configured, reading a page needs it too. */
export const SIGNED_IN = { headers: { authorization: BASIC } };

export async function registerTasks(database: TestDatabase): Promise<void> {
  await syncTaskRegistry(database.db, dashboardTasks);
}

/** Enqueues through graphile-worker's own SQL door; returns the job id. */
export async function addJob(
  database: TestDatabase,
  task: string,
  payload: unknown,
  options: { runAt?: Date; queue?: string; maxAttempts?: number } = {},
): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    select id from graphile_worker.add_job(${task}, ${JSON.stringify(payload)}::json,
      queue_name => ${options.queue ?? null}, run_at => ${options.runAt ?? null}::timestamptz,
      max_attempts => ${options.maxAttempts ?? null}::int)`.execute(database.db);
  return rows[0]!.id;
}

export function testDashboard(database: TestDatabase, options: Partial<DashboardOptions> = {}) {
  return createDashboard({
    db: database.db,
    tasks: dashboardTasks,
    crontab: "",
    credentials: CREDENTIALS,
    logger: quietLogger,
    ...options,
  });
}

/** A form body for app.request(). */
export function formBody(fields: Record<string, string>): { body: URLSearchParams; headers: Record<string, string> } {
  return {
    body: new URLSearchParams(fields),
    headers: { "content-type": "application/x-www-form-urlencoded" },
  };
}

export interface LiveRow {
  attempts: number;
  max_attempts: number;
  payload: unknown;
  run_at: Date;
}

/** A job's row in the queue, read the way a test may: straight from graphile-worker's table. */
export async function liveRow(database: TestDatabase, jobId: string): Promise<LiveRow | undefined> {
  const { rows } = await sql<LiveRow>`
    select attempts, max_attempts, payload, run_at from graphile_worker._private_jobs where id = ${jobId}::bigint`.execute(
    database.db,
  );
  return rows[0];
}

/** The dashboard's audit rows that name this job. */
export async function auditRows(database: TestDatabase, jobId: string) {
  return database.db
    .selectFrom("pgjobs.dashboard_actions")
    .selectAll()
    .where(sql<boolean>`job_ids @> array[${jobId}::bigint]`)
    .orderBy("id")
    .execute();
}
