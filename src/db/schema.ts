/**
 * Kysely's view of the tables pgjobs owns (an app's own tables are its own type). The tables themselves are defined by migrations/*.sql;
 * keep each interface beside the migration that shapes it in sync (test/schema.test.ts checks
 * the columns against the live database so drift fails CI).
 */
import type { ColumnType, Generated } from "kysely";

export interface SchemaMigrationsTable {
  source: "pgjobs" | "app";
  name: string;
  checksum: string;
  applied_at: ColumnType<Date, never, never>;
}

export type JobRunState =
  | "running"
  | "succeeded"
  | "failed"
  | "rejected"
  | "timed_out"
  | "abandoned"
  // A job that left or ended without running (started_at is null):
  | "cancelled"
  | "marked_complete"
  | "marked_failed";

export interface JobRunsTable {
  id: Generated<string>;
  job_id: string;
  task: string;
  queue: string | null;
  /** As graphile-worker stored it (json); null when over the task's cap (payload_truncated). */
  payload: unknown;
  payload_truncated: Generated<boolean>;
  payload_bytes: number | null;
  /** graphile-worker's revision of the job when this attempt started. */
  revision: number | null;
  /** pgjobs' count of the job's attempts, 1 for the first. */
  attempt: number;
  max_attempts: number;
  state: JobRunState;
  will_retry: Generated<boolean>;
  result: unknown;
  error_message: string | null;
  error_stack: string | null;
  note: string | null;
  worker_id: string | null;
  started_at: Date | null;
  finished_at: Date | null;
  duration_ms: ColumnType<number | null, never, never>;
  created_at: Generated<Date>;
}

export interface TaskRegistryTable {
  task: string;
  max_payload_bytes: Generated<number>;
  default_max_attempts: number | null;
  default_queue: string | null;
  updated_at: Generated<Date>;
}

/** pgjobs.runs: every attempt, running ones with their duration so far. */
export interface RunsView extends Omit<
  JobRunsTable,
  "id" | "will_retry" | "duration_ms" | "payload_truncated" | "created_at" | "payload_bytes" | "revision"
> {
  id: string;
  will_retry: boolean;
  payload_truncated: boolean;
  duration_ms: number | null;
}

export interface ResultWaitersTable {
  id: Generated<string>;
  job_id: string;
  since: Generated<Date>;
}

export type WorkerState = "running" | "stopping" | "stopped" | "lost";

export interface WorkersTable {
  id: string;
  host: string;
  pid: number;
  version: string;
  concurrency: number;
  tasks: string[];
  state: WorkerState;
  started_at: Date;
  last_seen_at: Date;
  stopped_at: Date | null;
  stop_reason: string | null;
}

/** pgjobs.worker_status: workers, their silence, and the jobs whose task bodies run now. */
export interface WorkerStatusView extends WorkersTable {
  seconds_silent: number;
  running_job_ids: string[];
  running_since: Date | null;
}

/** pgjobs.job_status: one row per job, live or finished. */
export interface JobStatusView {
  job_id: string;
  task: string;
  queue: string | null;
  state: JobRunState | "queued" | "scheduled" | "retrying";
  in_queue: boolean;
  attempts: number;
  max_attempts: number;
  run_at: Date | null;
  result: unknown;
  error_message: string | null;
  error_stack: string | null;
  created_at: Date | null;
  finished_at: Date | null;
}

export interface Database {
  "pgjobs.job_runs": JobRunsTable;
  "pgjobs.task_registry": TaskRegistryTable;
  "pgjobs.job_status": JobStatusView;
  "pgjobs.runs": RunsView;
  "pgjobs.workers": WorkersTable;
  "pgjobs.result_waiters": ResultWaitersTable;
  "pgjobs.worker_status": WorkerStatusView;
  "pgjobs.schema_migrations": SchemaMigrationsTable;
  "pgjobs.dashboard_actions": DashboardActionsTable;
}

// ── dashboard (src/db/migrations/0008_dashboard.sql)

export type DashboardActionKind = "retry" | "cancel" | "run_now" | "bulk_retry" | "bulk_cancel";

/** pgjobs.dashboard_actions: who did what from the dashboard, on which jobs, with what outcome. */
export interface DashboardActionsTable {
  id: Generated<string>;
  acted_at: Generated<Date>;
  actor: string;
  remote_addr: string | null;
  action: DashboardActionKind;
  job_ids: string[];
  detail: unknown;
  outcome: unknown;
}
