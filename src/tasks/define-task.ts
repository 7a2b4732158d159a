/**
 * A task is one module: a name, a zod schema for its payload, options, and `run`. The runner
 * validates every payload against the schema before `run` sees it, so `run` never gets the
 * `rawPayload as any` that untyped queues hand out.
 */
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { z } from "zod";

/** `domain__action`, lower snake case on both sides: `credits__expire_holds`. */
export const TASK_NAME_PATTERN = /^[a-z][a-z0-9_]*[a-z0-9]__[a-z][a-z0-9_]*$/;

export interface TaskOptions {
  /** Attempts before the job is left failed for a person to look at (graphile-worker's default: 25). */
  maxAttempts?: number;
  /** Jobs in the same named queue run one at a time, in order. */
  queue?: string;
  /**
   * Longest an attempt may run. Past it, `ctx.signal` aborts and the attempt is recorded
   * `timed_out` (retried while attempts remain); a transactional task's transaction is rolled
   * back even if its code ignores the signal and finishes later.
   */
  timeoutMs?: number;
  /**
   * Largest payload, in bytes of JSON, at every door: enqueue(), `pgjobs add`, pgjobs.enqueue,
   * graphile-worker's add_job and quickAddJob (over 64 KiB), and the worker.
   * @defaultValue `65536`
   */
  maxPayloadBytes?: number;
  /**
   * Accept payload keys the schema does not declare (zod's `z.object` would drop them silently).
   * Off by default: enqueue(), `pgjobs add` and the worker refuse them, so a typo'd field is an
   * error, not a default. A schema can also accept them itself (`z.looseObject`, `.catchall()`).
   * graphile-worker's cron `_cron` key is always accepted.
   * @defaultValue `false`
   */
  allowUnknownKeys?: boolean;
  /**
   * Run inside one transaction (`ctx.db`) that also records the result, so the task's database
   * effects and "this job succeeded" commit together: a rerun after a crash sees the success and
   * does not repeat them (effectively once). Turn on for tasks whose effects are writes to this
   * database. Off by default: a task that calls other services must not hold a transaction and
   * a pooled connection open while it waits, and it cannot be made once-only by our commit anyway
   * (use an idempotency key with the other service).
   */
  transactional?: boolean;
}

/**
 * What a task's run() gets besides its payload. `DB` is the app's kysely database type: ctx.db is
 * the app's own tables (declare it on run's ctx parameter, or use `defineTaskFor<AppDb>()`).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export interface TaskContext<DB = any> {
  job: {
    id: string;
    taskName: string;
    /** graphile-worker's count for this job (1 on the first attempt), against maxAttempts. */
    attempt: number;
    maxAttempts: number;
    queue: string | null;
    runAt: Date;
  };
  /** pino logger bound to this job (job id, task, attempt). */
  logger: Logger;
  /** Aborted when the worker shuts down or the attempt times out; pass it to anything that can be cancelled. */
  signal: AbortSignal;
  /** The job's transaction when the task is transactional, otherwise the pool. */
  db: Kysely<DB>;
}

export interface TaskDefinition<
  Name extends string = string,
  Schema extends z.ZodType = z.ZodType,
  Result = unknown,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  DB = any,
> {
  name: Name;
  payload: Schema;
  options: Required<Pick<TaskOptions, "transactional">> & Omit<TaskOptions, "transactional">;
  /** Returns the job's result: JSON-serialisable, it is kept with the job's history. */
  run(payload: z.output<Schema>, ctx: TaskContext<DB>): Promise<Result>;
}

/**
 * A task: a name (`domain__action`), a zod schema for its payload, options, and run().
 *
 * @example
 * export const sendWeekly = defineTask({
 *   name: "reports__send_weekly",
 *   payload: z.object({ accountId: z.uuid() }),
 *   async run(payload, ctx: TaskContext<AppDb>) {
 *     return ctx.db.selectFrom("reports").selectAll().where("account_id", "=", payload.accountId).execute();
 *   },
 * });
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function defineTask<Name extends string, Schema extends z.ZodType, Result, DB = any>(definition: {
  name: Name;
  payload: Schema;
  options?: TaskOptions;
  run(payload: z.output<Schema>, ctx: TaskContext<DB>): Promise<Result>;
}): TaskDefinition<Name, Schema, Result, DB> {
  if (!TASK_NAME_PATTERN.test(definition.name)) {
    throw new Error(
      `Task name "${definition.name}" is not of the form domain__action in lower snake case ` +
        `(for example credits__expire_holds); rename the task.`,
    );
  }
  return { ...definition, options: { transactional: false, ...definition.options } };
}

/**
 * defineTask with ctx.db typed as the app's database, once for all its tasks.
 *
 * @example
 * const defineAppTask = defineTaskFor<AppDb>();
 * export const hello = defineAppTask({ name: "app__hello", payload: z.object({ name: z.string() }), run: … });
 */
export function defineTaskFor<DB>() {
  return <Name extends string, Schema extends z.ZodType, Result>(definition: {
    name: Name;
    payload: Schema;
    options?: TaskOptions;
    run(payload: z.output<Schema>, ctx: TaskContext<DB>): Promise<Result>;
  }): TaskDefinition<Name, Schema, Result, DB> => defineTask<Name, Schema, Result, DB>(definition);
}
