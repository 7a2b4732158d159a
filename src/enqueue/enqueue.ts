/**
 * Enqueue from TypeScript, inside the caller's transaction: pass the kysely transaction that
 * writes the app data, and the job exists exactly when that data commits. The payload is
 * validated against the task's schema here, so a bad payload fails the caller, not the worker.
 * (The typed entry points are the client's: createPgJobs({ tasks }).enqueue / enqueueMany.)
 */
import { type Kysely, sql } from "kysely";
import { z } from "zod";
import type { TaskDefinition } from "../tasks/define-task.ts";
import type { TaskRegistry } from "../tasks/task-registry.ts";
import { DEFAULT_MAX_PAYLOAD_BYTES, findUnstorable } from "./payload-guard.ts";
import { findUnknownKeys, unknownKeyIssues } from "./unknown-keys.ts";

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

/** The options' bounds; pgjobs.enqueue checks the same ones in SQL (0007_security.sql). */
export const ENQUEUE_BOUNDS = {
  priority: { min: -1000, max: 1000 },
  maxAttempts: { min: 1, max: 100 },
} as const;

/** An option out of its bounds (ENQUEUE_BOUNDS): said before anything reaches the database. */
export class InvalidEnqueueOptionError extends Error {
  readonly option: "priority" | "maxAttempts";
  readonly value: number;
  constructor(option: "priority" | "maxAttempts", value: number) {
    const { min, max } = ENQUEUE_BOUNDS[option];
    super(`${option} must be a whole number from ${min} to ${max}, got ${value}; nothing was enqueued.`);
    this.name = "InvalidEnqueueOptionError";
    this.option = option;
    this.value = value;
  }
}

/** Throws InvalidEnqueueOptionError for a priority or maxAttempts out of ENQUEUE_BOUNDS. */
export function checkEnqueueOptions(options: Pick<EnqueueOptions, "priority" | "maxAttempts">): void {
  for (const option of ["priority", "maxAttempts"] as const) {
    const value = options[option];
    if (value === undefined) continue;
    const { min, max } = ENQUEUE_BOUNDS[option];
    if (!Number.isInteger(value) || value < min || value > max) throw new InvalidEnqueueOptionError(option, value);
  }
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
  /** What is wrong, one issue per line (zod's wording), without the sentence around it. */
  readonly details: string;
  constructor(taskName: string, issues: z.core.$ZodIssue[]) {
    const details = z.prettifyError(new z.ZodError(issues));
    super(`Payload for task "${taskName}" is invalid; nothing was enqueued.\n${details}`);
    this.name = "InvalidPayloadError";
    this.taskName = taskName;
    this.issues = issues;
    this.details = details;
  }
}

/**
 * Validates a payload for a task: the task's schema, keys it does not declare (unless the task
 * allows them), then what PostgreSQL and pgjobs can hold (no NUL or lone surrogate, bounded
 * nesting, the task's size cap). Returns the parsed payload (defaults applied), as it will be
 * stored.
 */
export function validatePayload(task: TaskDefinition, payload: unknown): unknown {
  const parsed = task.payload.safeParse(payload);
  if (!parsed.success) throw new InvalidPayloadError(task.name, parsed.error.issues);
  const unstorable = findUnstorable(parsed.data, task.options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES);
  if (unstorable) {
    throw new InvalidPayloadError(task.name, [
      { code: "custom", path: pathOf(unstorable.path), message: unstorable.problem, input: undefined },
    ]);
  }
  if (!task.options.allowUnknownKeys) {
    const unknown = findUnknownKeys(task.payload, payload);
    if (unknown.length > 0) throw new InvalidPayloadError(task.name, unknownKeyIssues(unknown));
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

/** One job of a batch: its task, payload and options. */
export interface JobSpec {
  task: string;
  payload: unknown;
  options?: Omit<EnqueueOptions, "jobKeyMode">;
}

interface AddedJobRow {
  id: string;
  run_at: Date;
  attempts: number;
  max_attempts: number;
  key: string | null;
}

/**
 * Enqueues one job in `db` (pass the caller's transaction): validated, with the task's own
 * queue and maxAttempts unless given. The one door TypeScript enqueues through.
 */
export async function enqueueJob(
  db: AnyDb,
  registry: TaskRegistry,
  taskName: string,
  payload: unknown,
  options: EnqueueOptions = {},
): Promise<EnqueuedJob> {
  const spec = resolveSpec(registry, { task: taskName, payload, options });
  // add_job returns the engine's private row (queue and task as ids): take what it decided.
  const { rows } = await sql<AddedJobRow>`
    select id, run_at, attempts, max_attempts, key
    from graphile_worker.add_job(
      identifier => ${spec.identifier},
      payload => ${spec.payload}::json,
      queue_name => ${spec.queue},
      run_at => ${spec.run_at}::timestamptz,
      max_attempts => ${spec.max_attempts}::int,
      job_key => ${spec.job_key},
      priority => ${spec.priority}::int,
      flags => ${spec.flags}::text[],
      job_key_mode => ${options.jobKeyMode ?? null}
    )`.execute(db);
  const row = rows[0];
  if (!row) throw new Error(`graphile_worker.add_job returned no job for task "${taskName}"`);
  return toEnqueuedJob(spec, row);
}

/** A job of an enqueueMany batch was refused before anything was enqueued: which one, and why. */
export class BatchJobError extends Error {
  /** Its place in the batch, from 0. */
  readonly index: number;
  readonly taskName: string;
  constructor(index: number, taskName: string, cause: Error) {
    super(`enqueueMany: jobs[${index}] (task "${taskName}") was refused; nothing was enqueued.\n${cause.message}`, {
      cause,
    });
    this.name = "BatchJobError";
    this.index = index;
    this.taskName = taskName;
  }
}

interface EnqueuedJobRow {
  job_index: number;
  job_id: string;
  run_at: Date;
  attempts: number;
  max_attempts: number;
  queue: string | null;
  key: string | null;
}

/**
 * Enqueues many jobs in one statement, each validated like enqueueJob first (a refused one throws
 * a BatchJobError naming its index and task, before any query). The statement is
 * pgjobs.enqueue_many (migrations 0009, 0011): SQL's guards, then one insert into the engine's
 * table (jobs with a key through add_jobs). Returns the jobs in the order given. `jobKeyMode`
 * applies to the whole batch; two jobs of one batch may not share a job key.
 */
export async function enqueueJobs(
  db: AnyDb,
  registry: TaskRegistry,
  jobs: readonly JobSpec[],
  options: { jobKeyMode?: "replace" | "preserve_run_at" } = {},
): Promise<EnqueuedJob[]> {
  if (jobs.length === 0) return [];
  const batch = jobs.map((job, index) => {
    try {
      const spec = resolveSpec(registry, job);
      // Unset fields are left out (undefined), not sent as null: a third of the bytes
      // PostgreSQL would parse into jsonb otherwise.
      return {
        task: spec.identifier,
        payload: spec.payload, // already JSON
        run_at: spec.run_at?.toISOString(),
        job_key: spec.job_key ?? undefined,
        queue: spec.queue ?? undefined,
        priority: spec.priority ?? undefined,
        max_attempts: spec.max_attempts ?? undefined,
      };
    } catch (error) {
      if (error instanceof Error) throw new BatchJobError(index, job.task, error);
      throw error;
    }
  });
  const { rows } = await sql<EnqueuedJobRow>`
    select job_index, job_id, run_at, attempts, max_attempts, queue, key
      from pgjobs.enqueue_many(${batchJson(batch)}::jsonb, ${options.jobKeyMode ?? "replace"})`.execute(db);
  if (rows.length !== jobs.length) {
    throw new Error(`pgjobs.enqueue_many returned ${rows.length} jobs for ${jobs.length}`);
  }
  return rows.map((row) => ({
    id: String(row.job_id),
    taskName: batch[row.job_index]!.task,
    queue: row.queue,
    runAt: row.run_at,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    key: row.key,
  }));
}

/**
 * The batch as one JSON array; each payload is already the JSON of what validatePayload returned,
 * and JSON.stringify drops the fields left undefined.
 */
function batchJson(batch: Array<{ payload: string } & Record<string, unknown>>): string {
  return `[${batch.map(({ payload, ...job }) => `{"payload":${payload},${JSON.stringify(job).slice(1)}`).join(",")}]`;
}

interface ResolvedSpec {
  identifier: string;
  payload: string;
  queue: string | null;
  run_at: Date | null;
  max_attempts: number | null;
  job_key: string | null;
  priority: number | null;
  flags: string[] | null;
}

function resolveSpec(registry: TaskRegistry, job: JobSpec): ResolvedSpec {
  const task = registry.get(job.task);
  const options = job.options ?? {};
  checkEnqueueOptions(options);
  const maxAttempts = options.maxAttempts ?? task.options.maxAttempts ?? null;
  return {
    identifier: task.name,
    payload: JSON.stringify(validatePayload(task, job.payload)),
    queue: options.queue ?? task.options.queue ?? null,
    run_at: options.runAt ?? null,
    max_attempts: maxAttempts,
    job_key: options.jobKey ?? null,
    priority: options.priority ?? null,
    // 25 is also graphile-worker's "not given", which the task-defaults trigger replaces with
    // the task's own; given here, it must stay: this flag tells the trigger (which removes it).
    flags: maxAttempts === 25 ? [EXPLICIT_MAX_ATTEMPTS_FLAG] : null,
  };
}

function toEnqueuedJob(spec: ResolvedSpec, row: AddedJobRow): EnqueuedJob {
  return {
    id: String(row.id),
    taskName: spec.identifier,
    queue: spec.queue,
    runAt: row.run_at,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    key: row.key,
  };
}
