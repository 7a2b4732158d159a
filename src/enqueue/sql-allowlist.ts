/**
 * Writes an app's tasks into pgjobs.task_registry (the names SQL may enqueue, with their payload
 * caps and default options): `pgjobs migrate` and every worker start do. It adds and updates and
 * never deletes: several services (or a canary) may share a database, each with its own tasks.
 * A name no worker has registered for 30 days, and no running worker runs, is dropped by the
 * workers' heartbeat (migrations 0004).
 */
import type { Kysely } from "kysely";
import type { Database } from "../db/schema.ts";
import type { TaskList } from "../tasks/task-registry.ts";
import { DEFAULT_MAX_PAYLOAD_BYTES } from "./payload-guard.ts";

export async function syncTaskRegistry(db: Kysely<Database>, tasks: TaskList): Promise<{ registered: string[] }> {
  if (tasks.length > 0) {
    await db
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
  return { registered: tasks.map((task) => task.name) };
}
