/**
 * `pgjobs migrate --sql`: the whole schema as one plain SQL script, for teams that keep their
 * schema in their own migration tool (supabase/migrations, Flyway, psql in CI). It holds what
 * `pgjobs migrate` would apply: graphile-worker's migrations, pgjobs' own, then the app's, each
 * guarded by its ledger (graphile_worker.migrations, pgjobs.schema_migrations) so the script can
 * be applied to any database, any number of times: what is applied already is skipped. A worker
 * started afterwards finds everything applied and migrates nothing.
 */
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { LEDGER_SQL, readMigrationFiles } from "./migrate.ts";

/** graphile-worker's migrations, as its migrator runs them (its schema name substituted). */
async function graphileMigrations(): Promise<Array<{ number: number; breaking: boolean; sql: string }>> {
  // Not an export of graphile-worker: its package is pinned to one version, and the test that
  // compares this script's schema with `pgjobs migrate`'s fails if its layout changes.
  const entry = createRequire(import.meta.url).resolve("graphile-worker");
  const file = path.join(path.dirname(entry), "generated", "sql.js");
  const { migrations } = (await import(pathToFileURL(file).href)) as { migrations: Record<string, string> };
  return Object.entries(migrations)
    .map(([name, text]) => ({
      number: Number.parseInt(name.slice(0, 6), 10),
      breaking: text.startsWith("--! breaking"),
      sql: text.replace(/:GRAPHILE_WORKER_SCHEMA\b/g, '"graphile_worker"'),
    }))
    .sort((a, b) => a.number - b.number);
}

/** A block that runs `sql` once, if `guard` (a boolean SQL expression) says it has not run. */
function once(guard: string, sql: string, record: string): string {
  const [block, text] = ["$pgjobs_block$", "$pgjobs_migration$"];
  if (sql.includes(block) || sql.includes(text)) throw new Error("a migration contains the export's quoting tags");
  return `do ${block}\nbegin\n  if ${guard} then\n    execute ${text}${sql}${text};\n    ${record};\n  end if;\nend;\n${block};\n`;
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

export async function exportSchemaSql(appMigrationsDir?: string): Promise<string> {
  const parts = [
    "-- pgjobs schema, exported by `pgjobs migrate --sql`. Safe to apply more than once: each migration",
    '-- below runs only if its ledger says it has not. Apply with: psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f <file>',
    "",
    "create schema if not exists graphile_worker;",
    "create table if not exists graphile_worker.migrations (id int primary key, ts timestamptz default now() not null);",
    "alter table graphile_worker.migrations add column if not exists breaking boolean not null default false;",
    "",
  ];
  for (const migration of await graphileMigrations()) {
    parts.push(
      `-- graphile-worker migration ${migration.number}`,
      once(
        `not exists (select 1 from graphile_worker.migrations where id = ${migration.number})`,
        migration.sql,
        `insert into graphile_worker.migrations (id, breaking) values (${migration.number}, ${migration.breaking})`,
      ),
    );
  }
  parts.push(LEDGER_SQL.trim(), "");
  for (const file of await readMigrationFiles(appMigrationsDir)) {
    // An app migration applied before pgjobs and its app had separate ledgers is under "pgjobs".
    const legacy = file.source === "app" ? ` or (source = 'pgjobs' and checksum = ${literal(file.checksum)})` : "";
    parts.push(
      `-- ${file.source} migration ${file.name}`,
      once(
        `not exists (select 1 from pgjobs.schema_migrations where name = ${literal(file.name)} and (source = ${literal(file.source)}${legacy}))`,
        file.sql,
        `insert into pgjobs.schema_migrations (source, name, checksum) values (${literal(file.source)}, ${literal(file.name)}, ${literal(file.checksum)})`,
      ),
    );
  }
  return parts.join("\n");
}
