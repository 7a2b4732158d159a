/**
 * The credits app's tables (migrations/0003_credits.sql and later), as kysely sees them: its
 * tasks' ctx.db and its repository are typed by CreditsDatabase. Written only through the
 * credits.* SQL functions; bigint columns arrive as strings.
 */
import type { ColumnType } from "kysely";

export type CreditHoldState = "active" | "captured" | "released" | "expired";
export type CreditLedgerKind = "deposit" | "hold" | "capture" | "release" | "expire";

export interface CreditAccountsTable {
  id: string;
  balance: ColumnType<string, never, never>;
  held: ColumnType<string, never, never>;
  /** The app user (auth.uid()) who owns it (migrations/0005); set with credits.set_account_owner. */
  owner_id: ColumnType<string | null, never, never>;
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

export interface CreditsDatabase {
  "credits.accounts": CreditAccountsTable;
  "credits.holds": CreditHoldsTable;
  "credits.ledger_entries": CreditLedgerEntriesTable;
}
