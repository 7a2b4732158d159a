/**
 * Enqueue from TypeScript, inside the caller's transaction: pass the kysely transaction that
 * writes the app data, and the job exists exactly when that data commits. The payload is
 * validated against the task's schema here, so a bad payload fails the caller, not the worker.
 */
import { type Kysely, sql } from "kysely";
import { z } from "zod";
import { getTask, type PayloadOf, type TaskName } from "../tasks/index.ts";
import { DEFAULT_MAX_PAYLOAD_BYTES, findUnstorable } from "./payload-guard.ts";

/** Tells the task-defaults trigger that max_attempts 25 was asked for, not graphile-worker's default. */
const EXPLICIT_MAX_ATTEMPTS_FLAG = "pgjobs:explicit_max_attempts";

export interface EnqueueOptions {
  /** When to run (default: now). */
  runAt?: Date;
  /** Jobs sharing a key are one job: enqueueing again replaces the pending one (see jobKeyMode). */
  jobKey?: string;
  /** "replace" (default): update the pending job; "preserve_run_at": keep its run time; "unsafe_dedupe": keep it as is. */
  jobKeyMode?: "replace" | "preserve_run_at" | "unsafe_dedupe";
  /** Serial queue name; defaults to the task's own option. */
  queue?: string;
  /** Lower runs first (default 0). */
  priority?: number;
  /** Defaults to the task's own option, else graphile-worker's 25. */
  maxAttempts?: number;
}

export interface EnqueuedJob {
  id: string;
  taskName: string;
  queue: string | null;
  runAt: Date;
  attempts: number;
  maxAttempts: number;
  key: string | null;
}

export class InvalidPayloadError extends Error {
  readonly taskName: string;
  readonly issues: z.core.$ZodIssue[];
  constructor(taskName: string, issues: z.core.$ZodIssue[]) {
    super(
      `Payload for task "${taskName}" is invalid; nothing was enqueued.\n${z.prettifyError(new z.ZodError(issues))}`,
    );
    this.name = "InvalidPayloadError";
    this.taskName = taskName;
    this.issues = issues;
  }
}

/**
 * Validates a payload for a task by name: the task's schema, then what PostgreSQL and pgjobs can
 * hold (no NUL or lone surrogate, bounded nesting, the task's size cap). Returns the parsed
 * payload (defaults applied).
 */
export function validatePayload(taskName: string, payload: unknown): unknown {
  const task = getTask(taskName);
  const parsed = task.payload.safeParse(payload);
  if (!parsed.success) throw new InvalidPayloadError(taskName, parsed.error.issues);
  const unstorable = findUnstorable(parsed.data, task.options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES);
  if (unstorable) {
    throw new InvalidPayloadError(taskName, [
      { code: "custom", path: pathOf(unstorable.path), message: unstorable.problem, input: undefined },
    ]);
  }
  return parsed.data;
}

/** `payload.items[3].note` → ["items", 3, "note"], for zod-style issue paths. */
function pathOf(path: string): PropertyKey[] {
  return [...path.replace(/^payload/, "").matchAll(/\.([^.[]+)|\[(\d+)\]|( key .*)$/g)].map((match) =>
    match[2] !== undefined ? Number(match[2]) : (match[1] ?? match[3]!.trim()),
  );
}

// Any Kysely works: the app's Database type is not ours to know.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

export async function enqueue<Name extends TaskName>(
  db: AnyDb,
  taskName: Name,
  payload: PayloadOf<Name>,
  options: EnqueueOptions = {},
): Promise<EnqueuedJob> {
  return enqueueUnchecked(db, taskName, payload, options);
}

/** `enqueue` for names and payloads known only at run time (CLI, dashboard): same checks. */
export async function enqueueUnchecked(
  db: AnyDb,
  taskName: string,
  payload: unknown,
  options: EnqueueOptions = {},
): Promise<EnqueuedJob> {
  const task = getTask(taskName);
  const validPayload = validatePayload(taskName, payload);
  const queue = options.queue ?? task.options.queue ?? null;
  const maxAttempts = options.maxAttempts ?? task.options.maxAttempts ?? null;
  // 25 is also graphile-worker's "not given", which the task-defaults trigger replaces with the
  // task's own; given here, it must stay: a job flag tells the trigger so (and is removed by it).
  const flags = maxAttempts === 25 ? [EXPLICIT_MAX_ATTEMPTS_FLAG] : null;
  // add_job returns the engine's private row (queue and task as ids): take what it decided.
  const { rows } = await sql<{
    id: string;
    run_at: Date;
    attempts: number;
    max_attempts: number;
    key: string | null;
  }>`
    select id, run_at, attempts, max_attempts, key
    from graphile_worker.add_job(
      identifier => ${taskName},
      payload => ${JSON.stringify(validPayload)}::json,
      queue_name => ${queue},
      run_at => ${options.runAt ?? null}::timestamptz,
      max_attempts => ${maxAttempts}::int,
      job_key => ${options.jobKey ?? null},
      priority => ${options.priority ?? null}::int,
      flags => ${flags}::text[],
      job_key_mode => ${options.jobKeyMode ?? null}
    )`.execute(db);
  const row = rows[0];
  if (!row) throw new Error(`graphile_worker.add_job returned no job for task "${taskName}"`);
  return {
    id: String(row.id),
    taskName,
    queue,
    runAt: row.run_at,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    key: row.key,
  };
}
