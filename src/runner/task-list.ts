/**
 * Turns the task registry into graphile-worker's task list. Each wrapper validates the payload,
 * gives the task its context (job, logger, abort signal, transaction), runs it, and records the
 * attempt's outcome in pgjobs.job_runs.
 */
import type { JobHelpers, Task, TaskList } from "graphile-worker";
import { type Kysely, sql } from "kysely";
import { z } from "zod";
import type { Database } from "../db/schema.ts";
import { findSucceededRun, finishRun } from "../history/runs.ts";
import type { Logger } from "../logger.ts";
import type { TaskContext, TaskDefinition } from "../tasks/define-task.ts";

/**
 * A failure that retrying cannot fix (bad payload, a business rule that says no). The attempt is
 * recorded as `rejected` and the job is left failed at once instead of being retried 25 times;
 * it stays visible in the queue and a person can retry it.
 */
export class PermanentJobError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PermanentJobError";
  }
}

/** An attempt ran past its task's `timeoutMs`. */
export class TaskTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TaskTimeoutError";
  }
}

export function buildTaskList(tasks: readonly TaskDefinition[], db: Kysely<Database>, logger: Logger): TaskList {
  return Object.fromEntries(tasks.map((task) => [task.name, wrapTask(task, db, logger)]));
}

function wrapTask(task: TaskDefinition, db: Kysely<Database>, logger: Logger): Task {
  return async (rawPayload, helpers) => {
    const { job } = helpers;
    const jobId = String(job.id);
    const attempt = job.attempts;
    // Made on first use: most successful jobs never log, and a child logger costs per job.
    let scopedLogger: Logger | undefined;
    const jobLogger = () => (scopedLogger ??= logger.child({ jobId, task: task.name, attempt }));
    const { timeoutMs } = task.options;
    const timeout = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
    const timeoutError = () =>
      new TaskTimeoutError(
        `Job ${jobId} (${task.name}) ran longer than its ${timeoutMs} ms timeout on attempt ${attempt}; ` +
          "its signal was aborted and its transaction (if any) rolled back. Raise timeoutMs or make the work smaller.",
      );
    const context = async (runDb: Kysely<Database>): Promise<TaskContext> => ({
      job: {
        id: jobId,
        taskName: task.name,
        attempt,
        maxAttempts: job.max_attempts,
        queue: job.job_queue_id === null ? null : await helpers.getQueueName(),
        runAt: job.run_at,
      },
      get logger() {
        return jobLogger();
      },
      signal: timeout ? AbortSignal.any([helpers.abortSignal, timeout]) : helpers.abortSignal,
      db: runDb,
    });

    // Runs the task unless an earlier attempt already succeeded (its transaction committed, then
    // the worker died before graphile-worker completed the job), and records the success.
    const runOnce = async (runDb: Kysely<Database>, payload: unknown) => {
      const earlier = attempt > 1 ? await findSucceededRun(runDb, jobId) : undefined;
      if (earlier) {
        jobLogger().warn(`job ${jobId} already succeeded in attempt ${earlier.attempt}; not running it again`);
        await finishRun(runDb, {
          jobId,
          attempt,
          state: "succeeded",
          result: earlier.result,
          note: `already succeeded in attempt ${earlier.attempt}; not run again`,
        });
        return;
      }
      const result = await task.run(payload, await context(runDb));
      // Late, after the timeout: throwing rolls a transactional task back instead of committing.
      if (timeout?.aborted) throw timeoutError();
      // A transactional task's success row is its idempotency marker and must commit with its
      // effects. Otherwise only a result is worth a round trip: the completion trigger records
      // the success of a task that returned nothing.
      if (task.options.transactional || (result !== undefined && result !== null)) {
        await finishRun(runDb, { jobId, attempt, state: "succeeded", result });
      }
    };

    try {
      const parsed = task.payload.safeParse(rawPayload);
      if (!parsed.success) {
        throw new PermanentJobError(
          `Job ${jobId} (${task.name}) has an invalid payload and will not be retried:\n` +
            `${z.prettifyError(parsed.error)}\n` +
            "Fix what enqueued it; then retry the job with a corrected payload.",
        );
      }
      const work = task.options.transactional
        ? db.transaction().execute((trx) => runOnce(trx, parsed.data))
        : runOnce(db, parsed.data);
      await (timeout ? settleWithin(work, timeout, timeoutError) : work);
      // The result is not returned to graphile-worker: it reads an array result as per-item
      // outcomes of a batch job. History keeps it instead.
    } catch (error) {
      const permanent = error instanceof PermanentJobError;
      const timedOut = error instanceof TaskTimeoutError;
      const willRetry = !permanent && attempt < job.max_attempts;
      await recordFailure(db, helpers, { permanent, timedOut, willRetry, error }).catch((recordError: unknown) =>
        // The trigger still records the failure when graphile-worker fails the job.
        jobLogger().error({ err: recordError }, `could not record the failure of job ${jobId} in pgjobs.job_runs`),
      );
      const next = permanent
        ? "it will not be retried (rejected); fix the cause, then retry it by hand"
        : willRetry
          ? "graphile-worker will retry it with backoff"
          : `it used all ${job.max_attempts} attempts and stays failed in the queue until a person retries it`;
      jobLogger().warn({ err: error }, `job ${jobId} (${task.name}) failed on attempt ${attempt}: ${next}`);
      throw error;
    }
  };
}

async function recordFailure(
  db: Kysely<Database>,
  helpers: JobHelpers,
  outcome: { permanent: boolean; timedOut: boolean; willRetry: boolean; error: unknown },
): Promise<void> {
  const jobId = String(helpers.job.id);
  await db.transaction().execute(async (trx) => {
    if (outcome.permanent) {
      // No attempts left: graphile-worker never picks it again, but it stays in the queue.
      await sql`update graphile_worker._private_jobs set max_attempts = attempts where id = ${jobId}::bigint`.execute(
        trx,
      );
    }
    await finishRun(trx, {
      jobId,
      attempt: helpers.job.attempts,
      state: outcome.permanent ? "rejected" : outcome.timedOut ? "timed_out" : "failed",
      error: outcome.error,
      willRetry: outcome.willRetry,
    });
  });
}

/**
 * Rejects when the timeout fires even if `work` never settles (a task ignoring its signal); the
 * work's own late outcome is then dropped (its transaction rolls back, see runOnce).
 */
function settleWithin<T>(work: Promise<T>, timeout: AbortSignal, timeoutError: () => Error): Promise<T> {
  work.catch(() => {}); // a late failure after the timeout is already reported
  return new Promise<T>((resolve, reject) => {
    const onTimeout = () => reject(timeoutError());
    if (timeout.aborted) return onTimeout();
    timeout.addEventListener("abort", onTimeout, { once: true });
    work.then(
      (value) => {
        timeout.removeEventListener("abort", onTimeout);
        resolve(value);
      },
      (error: unknown) => {
        timeout.removeEventListener("abort", onTimeout);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
