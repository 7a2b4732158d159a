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
  default_max_attempts: number | null;
  default_queue: string | null;
  updated_at: Generated<Date>;
}

/** pgjobs.runs: job_runs plus the attempts running now (those have no id yet). */
export interface RunsView extends Omit<JobRunsTable, "id" | "will_retry" | "duration_ms"> {
  id: string | null;
  will_retry: boolean;
  duration_ms: number | null;
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
  "pgjobs.pings": PingsTable;
  "pgjobs.schema_migrations": SchemaMigrationsTable;
  "credits.accounts": CreditAccountsTable;
  "credits.holds": CreditHoldsTable;
  "credits.ledger_entries": CreditLedgerEntriesTable;
}

// ── credits (migrations/0003_credits.sql). Written only through the credits.* SQL functions;
// bigint columns arrive as strings (see src/db/connection.ts).

export type CreditHoldState = "active" | "captured" | "released" | "expired";
export type CreditLedgerKind = "deposit" | "hold" | "capture" | "release" | "expire";

export interface CreditAccountsTable {
  id: string;
  balance: ColumnType<string, never, never>;
  held: ColumnType<string, never, never>;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, never, never>;
}

export interface CreditHoldsTable {
  id: ColumnType<string, never, never>;
  account_id: string;
  amount: ColumnType<string, never, never>;
  state: ColumnType<CreditHoldState, never, never>;
  captured_amount: ColumnType<string | null, never, never>;
  expires_at: ColumnType<Date, never, never>;
  idempotency_key: string;
  created_at: ColumnType<Date, never, never>;
  resolved_at: ColumnType<Date | null, never, never>;
}

export interface CreditLedgerEntriesTable {
  id: ColumnType<string, never, never>;
  account_id: string;
  kind: ColumnType<CreditLedgerKind, never, never>;
  amount: ColumnType<string, never, never>;
  held_change: ColumnType<string, never, never>;
  hold_id: ColumnType<string | null, never, never>;
  idempotency_key: ColumnType<string | null, never, never>;
  created_at: ColumnType<Date, never, never>;
}
