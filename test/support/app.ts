/**
 * What the tests share about the app under test: the credits app's tasks and client (as any
 * app's tests would import them), the database type the tests query, and a table for effects.
 */
import { readFileSync } from "node:fs";
import type { ColumnType, Generated, Kysely } from "kysely";
import type { CreditsDatabase } from "../../src/app/credits/credits.tables.ts";
import { jobs, tasks } from "../../src/app/tasks/index.ts";
import type { PgjobsDatabase } from "../../src/index.ts";

export { jobs as appJobs, tasks as appTasks };

/** public.effects: what test tasks write, so a test can count how often an effect happened. */
export interface EffectsTable {
  id: Generated<string>;
  message: string;
  job_id: string | null;
  created_at: ColumnType<Date, never, never>;
}

export type TestTables = PgjobsDatabase & CreditsDatabase & { "public.effects": EffectsTable };
export type TestDb = Kysely<TestTables>;

/** Created in the template database every test file clones. */
export const TEST_TABLES_SQL = `
  create table public.effects (
    id bigint generated always as identity primary key,
    message text not null,
    job_id bigint,
    created_at timestamptz not null default now()
  );`;

/** The app's crontab (the repository's top-level file). */
export const APP_CRONTAB = readFileSync(new URL("../../crontab", import.meta.url), "utf8");

/** The app's migrations folder, relative to the repository. */
export const APP_MIGRATIONS_DIR = new URL("../../migrations/", import.meta.url).pathname;
