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

export interface Database {
  "pgjobs.pings": PingsTable;
  "pgjobs.schema_migrations": SchemaMigrationsTable;
}
