/**
 * Turns the task registry into graphile-worker's task list. Each wrapper validates the payload,
 * gives the task its context (job, logger, abort signal, transaction) and runs it.
 */
import type { Kysely } from "kysely";
import { sql } from "kysely";
import type { JobHelpers, Task, TaskList } from "graphile-worker";
import { z } from "zod";
import type { Database } from "../db/schema.ts";
import type { Logger } from "../logger.ts";
import type { TaskContext, TaskDefinition } from "../tasks/define-task.ts";

/**
 * A failure that retrying cannot fix (bad payload, a business rule that says no). The job is
 * left failed at once instead of being retried 25 times, and stays visible and retryable.
 */
export class PermanentJobError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PermanentJobError";
  }
}

export function buildTaskList(tasks: readonly TaskDefinition[], db: Kysely<Database>, logger: Logger): TaskList {
  return Object.fromEntries(tasks.map((task) => [task.name, wrapTask(task, db, logger)]));
}

function wrapTask(task: TaskDefinition, db: Kysely<Database>, logger: Logger): Task {
  return async (rawPayload, helpers) => {
    const { job } = helpers;
    const jobLogger = logger.child({ jobId: job.id, task: task.name, attempt: job.attempts });
    try {
      const parsed = task.payload.safeParse(rawPayload);
      if (!parsed.success) {
        throw new PermanentJobError(
          `Job ${job.id} (${task.name}) has an invalid payload and will not be retried:\n` +
            `${z.prettifyError(parsed.error)}\n` +
            "Fix the payload at its source; a corrected job can be retried with `pgjobs retry`.",
        );
      }
      const context = (runDb: Kysely<Database>): TaskContext => ({
        job: {
          id: String(job.id),
          taskName: task.name,
          attempt: job.attempts,
          maxAttempts: job.max_attempts,
          queue: null,
          runAt: job.run_at,
        },
        logger: jobLogger,
        signal: helpers.abortSignal,
        db: runDb,
      });
      // The result is not returned to graphile-worker: it reads an array result as per-item
      // outcomes of a batch job. History keeps results instead.
      if (task.options.transactional) {
        await db.transaction().execute((trx) => task.run(parsed.data, context(trx)));
      } else {
        await task.run(parsed.data, context(db));
      }
    } catch (error) {
      if (error instanceof PermanentJobError) await giveUpOn(db, helpers);
      jobLogger.warn({ err: error }, `job ${job.id} (${task.name}) failed on attempt ${job.attempts}`);
      throw error;
    }
  };
}

/** Leaves the job failed with no attempts left: visible in the queue, retryable by a person. */
async function giveUpOn(db: Kysely<Database>, helpers: JobHelpers): Promise<void> {
  await sql`update graphile_worker._private_jobs set max_attempts = attempts where id = ${helpers.job.id}`.execute(db);
}
