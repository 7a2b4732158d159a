/**
 * Runs one registered task now, in this process, without the queue: Celery's `task.apply()`.
 * Used by `pgjobs run` and by the test kit.
 */
import type { Kysely } from "kysely";
import type { Database } from "../db/schema.ts";
import { validatePayload } from "../enqueue/enqueue.ts";
import { createLogger, type Logger } from "../logger.ts";
import type { TaskContext } from "../tasks/define-task.ts";
import { getTask, type PayloadOf, type TaskName } from "../tasks/index.ts";

const quiet = createLogger({ logLevel: "silent", logFormat: "json" });

/**
 * Runs a registered task now, in this process: payload validated by its schema, inside a
 * transaction when the task is transactional. Nothing is queued and no history is written.
 */
export async function runInline<Name extends TaskName>(
  db: Kysely<Database>,
  taskName: Name,
  payload: PayloadOf<Name>,
  options: { logger?: Logger; signal?: AbortSignal } = {},
): Promise<unknown> {
  const task = getTask(taskName);
  const parsed = validatePayload(taskName, payload);
  const context = (runDb: Kysely<Database>): TaskContext => ({
    // No queue row exists: job id "0" (ids are bigints and start at 1).
    job: { id: "0", taskName, attempt: 1, maxAttempts: 1, queue: null, runAt: new Date() },
    logger: options.logger ?? quiet,
    signal: options.signal ?? new AbortController().signal,
    db: runDb,
  });
  return task.options.transactional
    ? db.transaction().execute((trx) => task.run(parsed, context(trx)))
    : task.run(parsed, context(db));
}
