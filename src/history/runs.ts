/**
 * The runner's writes to pgjobs.job_runs. The start of every attempt, and its end when a worker
 * dies, are recorded by triggers on graphile-worker's table (migrations/0002_history.sql); the
 * runner adds what only it knows: the result, the error's stack, the precise state.
 */
import { type Kysely, sql } from "kysely";
import type { Database, JobRunState } from "../db/schema.ts";

export interface FinishedAttempt {
  jobId: string;
  attempt: number;
  state: Exclude<JobRunState, "running">;
  result?: unknown;
  error?: unknown;
  note?: string;
  /** For failures: graphile-worker will run the job again. */
  willRetry?: boolean;
}

export async function finishRun(db: Kysely<Database>, attempt: FinishedAttempt): Promise<void> {
  const error = attempt.error === undefined ? undefined : describeError(attempt.error);
  await sql`select pgjobs.finish_run(
      ${attempt.jobId}::bigint, ${attempt.attempt}::int, ${attempt.state}::text,
      ${attempt.result === undefined ? null : toJson(attempt.result)}::jsonb,
      ${error?.message ?? null}::text, ${error?.stack ?? null}::text, ${attempt.note ?? null}::text,
      ${attempt.willRetry ?? false}::boolean
    )`.execute(db);
}

/** The attempt that already succeeded for this job, if any (a rerun after a crash). */
export async function findSucceededRun(
  db: Kysely<Database>,
  jobId: string,
): Promise<{ attempt: number; result: unknown } | undefined> {
  return db
    .selectFrom("pgjobs.job_runs")
    .select(["attempt", "result"])
    .where("job_id", "=", jobId)
    .where("state", "=", "succeeded")
    .orderBy("attempt")
    .limit(1)
    .executeTakeFirst();
}

/** JSON text for a result: bigints become strings, undefined becomes null. */
export function toJson(value: unknown): string {
  return JSON.stringify(value ?? null, (_key, item: unknown) => (typeof item === "bigint" ? item.toString() : item));
}

function describeError(error: unknown): { message: string; stack: string | null } {
  if (error instanceof Error) return { message: error.message, stack: error.stack ?? null };
  return { message: typeof error === "string" ? error : toJson(error), stack: null };
}
