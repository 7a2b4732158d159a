/**
 * What a person does to a job at 3 a.m.: retry it (a failed or rejected job still in the queue
 * gets fresh attempts; a finished one is enqueued again with its recorded payload) or cancel it
 * (a job not running is removed, and history records it `cancelled`).
 */
import { type Kysely, sql } from "kysely";
import type { Database } from "../db/schema.ts";
import type { TaskRegistry } from "../tasks/task-registry.ts";
import { enqueueJob } from "./enqueue.ts";

export class JobActionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JobActionError";
  }
}

interface LiveJob {
  id: string;
  task: string;
  attempts: number;
  max_attempts: number;
  locked_by: string | null;
}

async function findLiveJob(db: Kysely<Database>, jobId: string): Promise<LiveJob | undefined> {
  const { rows } = await sql<LiveJob>`
    select id, task, attempts, max_attempts, locked_by from pgjobs.queued_jobs where id = ${jobId}::bigint`.execute(db);
  return rows[0];
}

export type RetryOutcome = { kind: "rescheduled"; jobId: string } | { kind: "enqueued_again"; jobId: string };

export async function retryJob(db: Kysely<Database>, registry: TaskRegistry, jobId: string): Promise<RetryOutcome> {
  const live = await findLiveJob(db, jobId);
  if (live) {
    if (live.locked_by !== null) {
      throw new JobActionError(`Job ${jobId} (${live.task}) is running on ${live.locked_by}; wait for it to end.`);
    }
    // More attempts on top of those made, not a reset: attempt numbers keep rising, so every
    // attempt keeps its own row in the history.
    const fresh = registry.find(live.task)?.options.maxAttempts ?? 25;
    await sql`select graphile_worker.reschedule_jobs(array[${jobId}::bigint], run_at => now(),
                max_attempts => ${live.attempts + fresh}::int)`.execute(db);
    return { kind: "rescheduled", jobId };
  }
  const last = await db
    .selectFrom("pgjobs.job_runs")
    .select(["task", "payload", "payload_truncated", "queue"])
    .where("job_id", "=", jobId)
    .orderBy("id", "desc")
    .executeTakeFirst();
  if (!last) throw new JobActionError(`There is no job ${jobId} in the queue or in the history.`);
  if (last.payload_truncated) {
    throw new JobActionError(
      `Job ${jobId} (${last.task}) had a payload over 64 KiB, which history does not keep; enqueue it again yourself.`,
    );
  }
  // The payload is checked against the task's schema as it is today; a stale one is refused.
  const job = await enqueueJob(db, registry, last.task, last.payload, last.queue ? { queue: last.queue } : {});
  return { kind: "enqueued_again", jobId: job.id };
}

export async function cancelJob(db: Kysely<Database>, jobId: string): Promise<void> {
  const { rows } = await sql<{ outcome: "cancelled" | "running" | "absent" }>`
    select pgjobs.cancel_job(${jobId}::bigint) as outcome`.execute(db);
  const outcome = rows[0]?.outcome;
  if (outcome === "absent") {
    throw new JobActionError(`Job ${jobId} is not in the queue (finished, or never existed): nothing to cancel.`);
  }
  if (outcome === "running") {
    throw new JobActionError(
      `Job ${jobId} is running and cannot be cancelled mid-run; wait for the attempt to end, or stop its worker ` +
        "(the attempt then ends abandoned), then cancel it.",
    );
  }
}
