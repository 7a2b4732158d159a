/**
 * Kysely's view of the tables pgjobs owns. The tables themselves are defined by migrations/*.sql;
 * keep each interface beside the migration that shapes it in sync (test/schema.test.ts checks
 * the columns against the live database so drift fails CI).
 */
import type { ColumnType, Generated } from "kysely";

export interface PingsTable {
  id: Generated<string>;
  message: string;
  job_id: string | null;
  created_at: ColumnType<Date, never, never>;
}

export interface SchemaMigrationsTable {
  name: string;
  checksum: string;
  applied_at: ColumnType<Date, never, never>;
}

export type JobRunState = "running" | "succeeded" | "failed" | "rejected" | "timed_out" | "abandoned" | "cancelled";

export interface JobRunsTable {
  id: Generated<string>;
  job_id: string;
  task: string;
  queue: string | null;
  payload: unknown;
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
}

export interface TaskRegistryTable {
  task: string;
  max_payload_bytes: Generated<number>;
  updated_at: Generated<Date>;
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
  "pgjobs.pings": PingsTable;
  "pgjobs.schema_migrations": SchemaMigrationsTable;
}
