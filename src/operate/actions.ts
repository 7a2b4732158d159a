/**
 * What a person can do from the dashboard: retry (optionally with an edited payload, checked by
 * the task's own schema), cancel, run a cron item now, and the same for a filtered set. Each call
 * is one SQL function that acts and writes its audit row in one transaction.
 */
import { sql } from "kysely";
import { InvalidPayloadError, validatePayload } from "../enqueue/enqueue.ts";
import type { TaskDefinition } from "../tasks/define-task.ts";
import { type Db, type JobFilter, listJobs } from "../read/queries.ts";

/** Who acted: the basic-auth user or "token", and the address the request came from. */
export interface Actor {
  name: string;
  remoteAddr: string | null;
}

/** A filtered set acts on at most this many jobs per request; the page says how many remain. */
export const BULK_LIMIT = 1000;

export type RetryOutcome = "rescheduled" | "enqueued_again" | "running" | "payload_not_kept" | "absent";
export type CancelOutcome = "cancelled" | "running" | "not_in_queue";

export interface JobOutcome<Outcome extends string> {
  jobId: string;
  outcome: Outcome;
  newJobId: string | null;
}

export type PayloadCheck = { ok: true; payload: unknown } | { ok: false; problem: string };

/**
 * Parses and validates an edited payload the way `enqueue` does (validatePayload: the task's
 * schema with defaults applied, keys it does not declare, what PostgreSQL can store). Returns the
 * payload to store.
 */
export function checkEditedPayload(tasks: readonly TaskDefinition[], taskName: string, text: string): PayloadCheck {
  const task = tasks.find((candidate) => candidate.name === taskName);
  if (!task) {
    return {
      ok: false,
      problem:
        `Task "${taskName}" is not in this task list, so an edited payload cannot be checked. ` +
        "Retry without editing, or run with the app's tasks.",
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: `The payload is not valid JSON: ${(error as Error).message}. Nothing was changed.` };
  }
  try {
    return { ok: true, payload: validatePayload(task, value) };
  } catch (error) {
    if (!(error instanceof InvalidPayloadError)) throw error;
    return {
      ok: false,
      problem: `The payload does not fit task "${taskName}"; nothing was changed.\n${error.details}`,
    };
  }
}

export async function retryJobs(
  db: Db,
  jobIds: readonly string[],
  actor: Actor,
  options: { payload?: unknown; bulk?: boolean; detail?: Record<string, unknown> } = {},
): Promise<Array<JobOutcome<RetryOutcome>>> {
  const payload = options.payload === undefined ? null : JSON.stringify(options.payload);
  const detail = { ...options.detail, ...(options.payload === undefined ? {} : { payload: options.payload }) };
  const { rows } = await sql<{ job_id: string; outcome: RetryOutcome; new_job_id: string | null }>`
    select * from pgjobs.dashboard_retry(${[...jobIds]}::bigint[], ${payload}::json, ${actor.name},
      ${actor.remoteAddr}, ${options.bulk ? "bulk_retry" : "retry"}, ${JSON.stringify(detail)}::jsonb)`.execute(db);
  return rows.map((row) => ({ jobId: row.job_id, outcome: row.outcome, newJobId: row.new_job_id }));
}

export async function cancelJobs(
  db: Db,
  jobIds: readonly string[],
  actor: Actor,
  options: { bulk?: boolean; detail?: Record<string, unknown> } = {},
): Promise<Array<JobOutcome<CancelOutcome>>> {
  const { rows } = await sql<{ job_id: string; outcome: CancelOutcome }>`
    select * from pgjobs.dashboard_cancel(${[...jobIds]}::bigint[], ${actor.name}, ${actor.remoteAddr},
      ${options.bulk ? "bulk_cancel" : "cancel"}, ${JSON.stringify(options.detail ?? {})}::jsonb)`.execute(db);
  return rows.map((row) => ({ jobId: row.job_id, outcome: row.outcome, newJobId: null }));
}

/** The ids a bulk action takes: the filter's first BULK_LIMIT jobs, newest first. */
export async function bulkTargets(db: Db, filter: JobFilter): Promise<string[]> {
  const rows = await listJobs(db, { ...filter, before: undefined }, BULK_LIMIT);
  return rows.map((row) => row.job_id);
}

export interface RunNowRequest {
  task: string;
  payload: unknown;
  queue: string | null;
  maxAttempts: number | null;
  priority: number | null;
  /** Recorded in the audit row: which crontab item was run. */
  detail: Record<string, unknown>;
}

export async function runNow(db: Db, request: RunNowRequest, actor: Actor): Promise<string> {
  const { rows } = await sql<{ job_id: string }>`
    select pgjobs.dashboard_run_now(${request.task}, ${JSON.stringify(request.payload ?? {})}::json, ${request.queue},
      ${request.maxAttempts}::int, ${request.priority}::int, ${actor.name}, ${actor.remoteAddr},
      ${JSON.stringify(request.detail)}::jsonb) as job_id`.execute(db);
  const jobId = rows[0]?.job_id;
  if (!jobId) throw new Error(`pgjobs.dashboard_run_now returned no job for task "${request.task}"`);
  return jobId;
}

/** How an outcome reads on the page. */
export function describeOutcome(outcome: JobOutcome<string>): string {
  switch (outcome.outcome) {
    case "rescheduled":
      return `job ${outcome.jobId} will run again now, with fresh attempts`;
    case "enqueued_again":
      return `job ${outcome.jobId} had finished; enqueued again as job ${outcome.newJobId}`;
    case "running":
      return `job ${outcome.jobId} is held by a worker; left alone (wait for the attempt to end)`;
    case "payload_not_kept":
      return `job ${outcome.jobId} had finished and its payload was too large to keep; retry it with an edited payload`;
    case "cancelled":
      return `job ${outcome.jobId} cancelled`;
    case "not_in_queue":
      return `job ${outcome.jobId} is not in the queue (it finished, or never existed); nothing to cancel`;
    case "absent":
      return `job ${outcome.jobId} is neither in the queue nor in the history`;
    default:
      return `job ${outcome.jobId}: ${outcome.outcome}`;
  }
}
