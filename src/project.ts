/**
 * The app the `pgjobs` command works for, found as npm finds package.json: the nearest
 * `pgjobs.config.ts` (or .mjs/.js) at or above the current folder. It names the app's tasks, its
 * crontab and its migrations folder; relative paths are relative to the config file, and so is
 * the embedded server's data folder, so `npx pgjobs …` from any subfolder reaches the same one.
 *
 * @example
 * // pgjobs.config.ts
 * import { defineConfig } from "pgjobs";
 * import { tasks } from "./src/jobs/tasks.ts";
 * export default defineConfig({ tasks, crontab: "crontab", migrations: "migrations" });
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type pg from "pg";
import type { Db } from "./db/connection.ts";
import type { Logger } from "./logger.ts";
import type { TaskList } from "./tasks/task-registry.ts";

/** A command an app adds to the `pgjobs` CLI (`pgjobs <name> …`). */
export interface AppCommand {
  /** One line for `pgjobs --help`. */
  summary: string;
  /** Returns the exit code. Errors whose message says what to do are printed without a stack. */
  run(args: string[], context: { db: Db; pool: pg.Pool; logger: Logger; json: boolean }): Promise<number>;
}

export interface PgJobsConfig {
  /** The app's tasks. */
  tasks: TaskList;
  /** The crontab file (graphile-worker's format), relative to the config file. */
  crontab?: string;
  /** The folder of the app's own migrations (NNNN_name.sql), applied after pgjobs' own. */
  migrations?: string;
  /** Commands the app adds to the `pgjobs` CLI. */
  commands?: Record<string, AppCommand>;
}

/** Declares an app's pgjobs configuration (a typed identity: the CLI reads the default export). */
export function defineConfig(config: PgJobsConfig): PgJobsConfig {
  return config;
}

export const CONFIG_FILES = ["pgjobs.config.ts", "pgjobs.config.mjs", "pgjobs.config.js"];

export interface Project {
  /** The folder the config file is in (or, without one, the nearest with a package.json). */
  root: string;
  /** The config file, when there is one. */
  configFile: string | undefined;
  tasks: TaskList;
  /** The crontab's text ("" without one). */
  crontab: string;
  /** Absolute path of the app's migrations folder, when it has one. */
  migrationsDir: string | undefined;
  commands: Record<string, AppCommand>;
  /** The text of the project's .env file, when there is one (read, not applied: see loadConfig). */
  dotenv: string | undefined;
}

export class ProjectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProjectError";
  }
}

export async function loadProject(cwd: string): Promise<Project> {
  const configFile = findUp(cwd, CONFIG_FILES);
  const root = configFile ? path.dirname(configFile) : path.dirname(findUp(cwd, ["package.json"]) ?? "") || cwd;
  const dotenvFile = path.join(root, ".env");
  const dotenv = existsSync(dotenvFile) ? await readFile(dotenvFile, "utf8") : undefined;
  if (!configFile) {
    return { root, configFile, tasks: [], crontab: "", migrationsDir: undefined, commands: {}, dotenv };
  }
  const config = await importConfig(configFile);
  const crontab = config.crontab ? await readProjectFile(root, config.crontab, "crontab") : "";
  const migrationsDir = config.migrations ? path.resolve(root, config.migrations) : undefined;
  if (migrationsDir && !existsSync(migrationsDir)) {
    throw new ProjectError(`${configFile} names the migrations folder ${config.migrations}, which does not exist.`);
  }
  return { root, configFile, tasks: config.tasks, crontab, migrationsDir, commands: config.commands ?? {}, dotenv };
}

async function importConfig(file: string): Promise<PgJobsConfig> {
  let loaded: { default?: unknown };
  try {
    loaded = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (error) {
    throw new ProjectError(`Could not load ${file}: ${(error as Error).message}`);
  }
  const config = loaded.default as Partial<PgJobsConfig> | undefined;
  if (!config || !Array.isArray(config.tasks)) {
    throw new ProjectError(
      `${file} must export default defineConfig({ tasks: [...] }) with the app's task list (got ${typeof config}).`,
    );
  }
  return config as PgJobsConfig;
}

async function readProjectFile(root: string, relative: string, what: string): Promise<string> {
  const file = path.resolve(root, relative);
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new ProjectError(
      `Cannot read the ${what} ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)}).`,
    );
  }
}

function findUp(from: string, names: readonly string[]): string | undefined {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    for (const name of names) {
      const candidate = path.join(dir, name);
      if (existsSync(candidate)) return candidate;
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}
