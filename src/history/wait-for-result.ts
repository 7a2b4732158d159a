/**
 * `waitForResult(pool, jobId)`: Celery's `AsyncResult.get()`, on PostgreSQL. It resolves when
 * the job reaches a final state, woken by the NOTIFY that pgjobs sends when a job finishes and
 * checking again on a timer in case a notification is missed (or LISTEN is unavailable, as
 * behind a transaction-mode pooler).
 */
import type pg from "pg";
import { createDb } from "../db/connection.ts";
import type { JobStatusView } from "../db/schema.ts";

export const JOB_FINISHED_CHANNEL = "pgjobs_job_finished";

export interface JobOutcome {
  jobId: string;
  task: string;
  state: JobStatusView["state"];
  /** True once nothing will run this job again without a person. */
  final: boolean;
  attempts: number;
  maxAttempts: number;
  result: unknown;
  error: { message: string; stack: string | null } | null;
  finishedAt: Date | null;
}

export class JobNotFoundError extends Error {
  constructor(jobId: string) {
    super(`There is no job ${jobId} in the queue or in pgjobs.job_runs (wrong id, or its history was pruned).`);
    this.name = "JobNotFoundError";
  }
}

export class JobResultTimeoutError extends Error {
  readonly outcome: JobOutcome;
  constructor(outcome: JobOutcome, timeoutMs: number) {
    super(
      `Job ${outcome.jobId} (${outcome.task}) has not finished after ${timeoutMs} ms: it is ${outcome.state}` +
        ` (attempt ${outcome.attempts} of ${outcome.maxAttempts}). Is a worker running? Check \`pgjobs job ${outcome.jobId}\`.`,
    );
    this.name = "JobResultTimeoutError";
    this.outcome = outcome;
  }
}

const FINAL_IN_QUEUE = new Set<JobStatusView["state"]>([
  "succeeded",
  "failed",
  "rejected",
  "timed_out",
  "abandoned",
  "marked_failed",
]);

/** The job's state now, from pgjobs.job_status; undefined when no such job exists. */
export async function getJobOutcome(pool: pg.Pool, jobId: string): Promise<JobOutcome | undefined> {
  const row = await createDb(pool)
    .selectFrom("pgjobs.job_status")
    .selectAll()
    .where("job_id", "=", jobId)
    .executeTakeFirst();
  if (!row) return undefined;
  // In the queue, a job is final once nothing will run it again without a person: it
  // succeeded (its completion is on its way) or it failed with no attempts left.
  const final = !row.in_queue || FINAL_IN_QUEUE.has(row.state);
  return {
    jobId: row.job_id,
    task: row.task,
    state: row.state,
    final,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    result: row.result,
    error: row.error_message === null ? null : { message: row.error_message, stack: row.error_stack },
    finishedAt: row.finished_at,
  };
}

export interface WaitOptions {
  /** Give up after this long (default 30 s) with JobResultTimeoutError. */
  timeoutMs?: number;
  /** Check at least this often even without a notification (default 1 s). */
  pollIntervalMs?: number;
  /** Set false behind a transaction-mode pooler, where LISTEN does not work (default true). */
  listen?: boolean;
  signal?: AbortSignal;
}

export async function waitForResult(pool: pg.Pool, jobId: string, options: WaitOptions = {}): Promise<JobOutcome> {
  const { timeoutMs = 30_000, pollIntervalMs = 1000, listen = true } = options;
  const first = await getJobOutcome(pool, jobId);
  if (!first) throw new JobNotFoundError(jobId);
  if (first.final) return first;

  const db = createDb(pool);
  // Registered before LISTEN: the engine notifies only about jobs someone waits for.
  const waiter = listen
    ? await db.insertInto("pgjobs.result_waiters").values({ job_id: jobId }).returning("id").executeTakeFirstOrThrow()
    : undefined;
  const listener = listen ? await pool.connect() : undefined;
  let wake: () => void = () => {};
  const onNotification = (message: pg.Notification) => {
    // One notification per engine statement, listing the ids it finished.
    if (message.channel === JOB_FINISHED_CHANNEL && message.payload?.split(",").includes(jobId)) wake();
  };
  try {
    if (listener) {
      listener.on("notification", onNotification);
      await listener.query(`listen ${JOB_FINISHED_CHANNEL}`);
    }
    const deadline = Date.now() + timeoutMs;
    let latest = first;
    for (;;) {
      // Checked after LISTEN is active, so a finish between the first check and now is not missed.
      const outcome = await getJobOutcome(pool, jobId);
      if (!outcome) throw new JobNotFoundError(jobId);
      if (outcome.final) return outcome;
      latest = outcome;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new JobResultTimeoutError(latest, timeoutMs);
      options.signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(pollIntervalMs, remaining));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    if (listener) {
      listener.off("notification", onNotification);
      await listener.query(`unlisten ${JOB_FINISHED_CHANNEL}`).catch(() => {});
      listener.release();
    }
    if (waiter) {
      await db
        .deleteFrom("pgjobs.result_waiters")
        .where("id", "=", waiter.id)
        .execute()
        .catch(() => {});
    }
  }
}
