/**
 * Turns task definitions into graphile-worker's task list. Each wrapper records the attempt's
 * start (before the body runs: a job fetched but never started has no history), validates the
 * payload, gives the task its context (job, logger, abort signal, transaction), runs it, and
 * records what only the runner knows about its end.
 */
import type { Task, TaskList } from "graphile-worker";
import { type Kysely, sql } from "kysely";
import type pg from "pg";
import { z } from "zod";
import type { Database } from "../db/schema.ts";
import { DEFAULT_MAX_PAYLOAD_BYTES, findUnstorable } from "../enqueue/payload-guard.ts";
import { findUnknownKeys, unknownKeyIssues } from "../enqueue/unknown-keys.ts";
import type { Logger } from "../logger.ts";
import type { TaskContext, TaskDefinition } from "../tasks/define-task.ts";
import { type AttemptLedger, findSucceededAttempt, recordEnds } from "./attempt-ledger.ts";
import { settleBefore } from "./deadline.ts";
import { runInJobTransaction } from "./job-transaction.ts";

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

/** This worker no longer holds the job's lock (it was reaped while away): the job is elsewhere now. */
export class JobNotHeldError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JobNotHeldError";
  }
}

export interface RunnerDeps {
  /** Pool-backed: the context of non-transactional tasks and the runner's own reads. */
  db: Kysely<Database>;
  /** Where transactional tasks take their connection from. */
  pool: pg.Pool;
  logger: Logger;
  ledger: AttemptLedger;
  /** True when this worker may have been reaped: a finished job is checked before it completes. */
  mayHaveBeenReaped?: () => boolean;
  /** True on a direct connection, where a client's processID is its backend's pid. */
  trustProcessId?: boolean;
  /** Aborts every running job's signal: the worker's drain time is over. */
  stopSignal?: AbortSignal;
  /** The ids of the jobs whose task bodies run now in this process. */
  running?: Set<string>;
}

export function buildTaskList(tasks: readonly TaskDefinition[], deps: RunnerDeps): TaskList {
  return Object.fromEntries(tasks.map((task) => [task.name, wrapTask(task, deps)]));
}

function wrapTask(task: TaskDefinition, deps: RunnerDeps): Task {
  return async (rawPayload, helpers) => {
    const { job } = helpers;
    const jobId = String(job.id);
    const workerId = job.locked_by ?? "";
    const attempt = job.attempts;
    const startedAt = performance.now();
    const ranMs = () => performance.now() - startedAt;
    // Reported in the background: waiting for it would put a round trip in front of every job.
    deps.ledger.started(jobId, workerId);
    // Made on first use: most successful jobs never log, and a child logger costs per job.
    let scopedLogger: Logger | undefined;
    const jobLogger = () => (scopedLogger ??= deps.logger.child({ jobId, task: task.name, attempt }));
    const { timeoutMs } = task.options;
    const timeout = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
    const timeoutError = () =>
      new TaskTimeoutError(
        `Job ${jobId} (${task.name}) ran longer than its ${timeoutMs} ms timeout on attempt ${attempt}; ` +
          "its signal was aborted and its transaction (if any) rolled back. Raise timeoutMs or make the work smaller.",
      );
    let signal: AbortSignal | undefined;
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
      get signal() {
        return (signal ??= AbortSignal.any(
          [helpers.abortSignal, deps.stopSignal, timeout].filter((item): item is AbortSignal => item !== undefined),
        ));
      },
      db: runDb,
    });

    // Runs the task unless an earlier attempt of the same work already succeeded (its
    // transaction committed, then its worker died before graphile-worker completed the job).
    const runOnce = async (runDb: Kysely<Database>, payload: unknown): Promise<{ result: unknown; note?: string }> => {
      const earlier = attempt > 1 ? await findSucceededAttempt(runDb, jobId, job.revision) : undefined;
      if (earlier) {
        jobLogger().warn(`job ${jobId} already succeeded in attempt ${earlier.attempt}; not running it again`);
        return { result: earlier.result, note: `already succeeded in attempt ${earlier.attempt}; not run again` };
      }
      const result = await task.run(payload, await context(runDb));
      // Late, after the timeout: throwing rolls a transactional task back instead of committing.
      if (timeout?.aborted) throw timeoutError();
      await assertStillHeld(runDb, jobId, workerId, deps);
      return { result };
    };

    deps.running?.add(jobId);
    try {
      const payload = validPayload(task, jobId, rawPayload);
      if (task.options.transactional) {
        // The success row commits with the task's effects: a rerun after a crash sees it.
        await runInJobTransaction(
          deps.pool,
          async (trx) => {
            const { result, note } = await runOnce(trx, payload);
            await recordEnds(trx, workerId, [
              { jobId, workerId, state: "succeeded", ranMs: ranMs(), result, ...(note && { note }) },
            ]);
          },
          { deadline: timeout, deadlineError: timeoutError, trustProcessId: deps.trustProcessId },
        );
      } else {
        const work = runOnce(deps.db, payload);
        // At the timeout the slot goes back to the worker even if the task ignores its signal.
        const { result, note } = await (timeout
          ? settleBefore(work, timeout, () => Promise.reject(timeoutError()))
          : work);
        // The engine's completion records a success that returned nothing; a result is worth a write.
        if ((result !== undefined && result !== null) || note) {
          await deps.ledger.end({ jobId, workerId, state: "succeeded", ranMs: ranMs(), result, ...(note && { note }) });
        }
      }
      // The result is not returned to graphile-worker: it reads an array result as per-item
      // outcomes of a batch job. History keeps it instead.
    } catch (thrown) {
      // A task that honours its signal at the timeout fails with its own abort error: still a timeout.
      const error =
        timeout?.aborted && !(thrown instanceof TaskTimeoutError)
          ? Object.assign(timeoutError(), { cause: thrown })
          : thrown;
      const notHeld = error instanceof JobNotHeldError;
      const permanent = error instanceof PermanentJobError;
      const willRetry = !permanent && job.attempts < job.max_attempts;
      if (!notHeld) {
        await deps.ledger
          .end({
            jobId,
            workerId,
            state: permanent ? "rejected" : error instanceof TaskTimeoutError ? "timed_out" : "failed",
            ranMs: ranMs(),
            error,
            willRetry,
          })
          .catch((recordError: unknown) =>
            // The engine's failure of the job still records the attempt as failed.
            jobLogger().error({ err: recordError }, `could not record the failure of job ${jobId} in pgjobs.job_runs`),
          );
      }
      const next = notHeld
        ? "another worker has it now"
        : permanent
          ? "it will not be retried (rejected); fix the cause, then retry it by hand"
          : willRetry
            ? "graphile-worker will retry it with backoff"
            : `it used all ${job.max_attempts} attempts and stays failed in the queue until a person retries it`;
      jobLogger().warn({ err: error }, `job ${jobId} (${task.name}) failed on attempt ${attempt}: ${next}`);
      throw error;
    } finally {
      deps.running?.delete(jobId);
      deps.ledger.stopped(jobId, workerId);
    }
  };
}

/**
 * The payload the task's `run` gets, or a PermanentJobError that names what is wrong with it:
 * what enqueue() refuses can still arrive through graphile_worker.add_job or quickAddJob.
 */
function validPayload(task: TaskDefinition, jobId: string, rawPayload: unknown): unknown {
  const reject = (why: string) =>
    new PermanentJobError(
      `Job ${jobId} (${task.name}) has an invalid payload and will not be retried: ${why}\n` +
        "Fix what enqueued it; then retry the job with a corrected payload.",
    );
  const unstorable = findUnstorable(rawPayload, task.options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES);
  if (unstorable) throw reject(`${unstorable.path} ${unstorable.problem}.`);
  const parsed = task.payload.safeParse(rawPayload);
  if (!parsed.success) throw reject(`\n${z.prettifyError(parsed.error)}`);
  if (!task.options.allowUnknownKeys) {
    const unknown = findUnknownKeys(task.payload, rawPayload);
    if (unknown.length > 0) throw reject(`\n${z.prettifyError(new z.ZodError(unknownKeyIssues(unknown)))}`);
  }
  return parsed.data;
}

/**
 * Before a finished job completes: if this worker may have been reaped while it ran, make sure
 * it still holds the job. Otherwise graphile-worker's completion (by id) would remove a job that
 * another worker now runs. In a job's transaction, a throw here also rolls its effects back.
 */
async function assertStillHeld(db: Kysely<Database>, jobId: string, workerId: string, deps: RunnerDeps) {
  if (!deps.mayHaveBeenReaped?.()) return;
  const { rows } = await sql<{ held: boolean }>`select pgjobs.holds_job(${workerId}, ${jobId}::bigint) as held`.execute(
    db,
  );
  if (!rows[0]?.held) {
    throw new JobNotHeldError(
      `Job ${jobId} finished here, but this worker (${workerId}) was reaped while it ran and no longer holds it; ` +
        "its result is discarded and the job runs elsewhere.",
    );
  }
}
