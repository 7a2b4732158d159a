/**
 * Keeps pgjobs.task_registry (the names SQL may enqueue) in step with src/tasks/index.ts:
 * `pgjobs migrate` and every worker start write the TypeScript list into the database.
 */
import type { Kysely } from "kysely";
import type { Database } from "../db/schema.ts";
import type { TaskDefinition } from "../tasks/define-task.ts";
import { tasks as registeredTasks } from "../tasks/index.ts";

export const DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024;

export async function syncTaskRegistry(
  db: Kysely<Database>,
  tasks: readonly TaskDefinition[] = registeredTasks,
): Promise<{ registered: string[]; removed: string[] }> {
  return db.transaction().execute(async (trx) => {
    const names = tasks.map((task) => task.name);
    if (tasks.length > 0) {
      await trx
        .insertInto("pgjobs.task_registry")
        .values(
          tasks.map((task) => ({
            task: task.name,
            max_payload_bytes: task.options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
            default_max_attempts: task.options.maxAttempts ?? null,
            default_queue: task.options.queue ?? null,
          })),
        )
        .onConflict((conflict) =>
          conflict.column("task").doUpdateSet((eb) => ({
            max_payload_bytes: eb.ref("excluded.max_payload_bytes"),
            default_max_attempts: eb.ref("excluded.default_max_attempts"),
            default_queue: eb.ref("excluded.default_queue"),
            updated_at: new Date(),
          })),
        )
        .execute();
    }
    // A task removed from the code can no longer be enqueued from SQL; jobs already queued
    // for it stay visible in the queue and the history.
    const removed = await trx
      .deleteFrom("pgjobs.task_registry")
      .$if(names.length > 0, (query) => query.where("task", "not in", names))
      .returning("task")
      .execute();
    return { registered: names, removed: removed.map((row) => row.task) };
  });
}
