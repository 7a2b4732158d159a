/**
 * Runs one task now, in this process, without the queue: Celery's `task.apply()`. Used by
 * `pgjobs run` and the test kit. The payload makes the trip a queued job's payload makes (JSON
 * text, parsed again), so what passes here passes in a worker: a Date or a bigint that would not
 * survive the queue does not survive here either.
 */
import type { Kysely } from "kysely";
import { validatePayload } from "../enqueue/enqueue.ts";
import { createLogger, type Logger } from "../logger.ts";
import type { TaskContext, TaskDefinition } from "../tasks/define-task.ts";

const quiet = createLogger({ logLevel: "silent", logFormat: "json" });

/**
 * Runs `task` now with `payload`: validated by its schema after the JSON round trip, inside a
 * transaction when the task is transactional. Nothing is queued and no history is written.
 */
export async function runTaskInline(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  db: Kysely<any>,
  task: TaskDefinition,
  payload: unknown,
  options: { logger?: Logger; signal?: AbortSignal } = {},
): Promise<unknown> {
  const queued = JSON.parse(JSON.stringify(payload ?? {})) as unknown;
  const parsed = validatePayload(task, queued);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const context = (runDb: Kysely<any>): TaskContext => ({
    // No queue row exists: job id "0" (ids are bigints and start at 1).
    job: { id: "0", taskName: task.name, attempt: 1, maxAttempts: 1, queue: null, runAt: new Date() },
    logger: options.logger ?? quiet,
    signal: options.signal ?? new AbortController().signal,
    db: runDb,
  });
  const result = task.options.transactional
    ? await db.transaction().execute((trx) => task.run(parsed, context(trx)))
    : await task.run(parsed, context(db));
  // What history would keep: the result after its own trip through JSON.
  return result === undefined ? null : (JSON.parse(JSON.stringify(result)) as unknown);
}
