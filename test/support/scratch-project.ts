/**
 * A pgjobs app outside this repository, as a user's project is: a folder with a
 * pgjobs.config.mjs (the credits app's tasks and migrations, imported by absolute path), a
 * subfolder to run commands from, and no PGJOBS_DATA_DIR, so the embedded server keeps its data
 * in the default `<project>/.pgjobs`. Real `pgjobs` processes run in it; when the test file ends,
 * every one still running is killed, and so is any embedded server left in a project's folder.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import pg from "pg";
import { afterAll, afterEach } from "vitest";
import { embeddedUrl, readPostmaster, stopPostmaster } from "../../src/db/embedded.ts";
import { CLI, cleanEnv } from "./cli.ts";
import { waitFor } from "./wait.ts";

const APP_TASKS = fileURLToPath(new URL("../../src/app/tasks/index.ts", import.meta.url));
const APP_MIGRATIONS = fileURLToPath(new URL("../../migrations", import.meta.url));

export interface ScratchProject {
  root: string;
  /** `<root>/sub/dir`: where `npx pgjobs …` runs from in a subfolder. */
  sub: string;
  /** The default data folder, `<root>/.pgjobs`. */
  dataDir: string;
  /** The environment a newcomer has: no DATABASE_URL, no PGJOBS_DATA_DIR; logs as JSON lines. */
  env: NodeJS.ProcessEnv;
}

export interface CliProcess {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** Waits until the output contains `text`; fails early, with the output, if the process exits. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  /** Its exit code (null: killed by a signal). */
  exited: Promise<number | null>;
}

/**
 * Scratch projects and `pgjobs` processes, all cleaned up when the test file ends (even failed);
 * with `perTest`, processes and servers also after each test, so one that failed leaves the next
 * a project with nothing running.
 */
export function useScratchProjects(options: { perTest?: boolean } = {}) {
  const folders: string[] = [];
  const projects: ScratchProject[] = [];
  const children: ChildProcess[] = [];
  const stopEverything = async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    for (const { dataDir } of projects) {
      const server = await readPostmaster(dataDir);
      if (server.state !== "none" && server.state !== "foreign") await stopPostmaster(server.pid, 10_000);
    }
  };
  if (options.perTest) afterEach(stopEverything);
  afterAll(async () => {
    await stopEverything();
    for (const folder of folders) await rm(folder, { recursive: true, force: true });
  });

  /** A temporary folder, removed at the end; readable by others (the server may run as `postgres`). */
  async function scratchFolder(prefix: string): Promise<string> {
    const folder = await mkdtemp(path.join(os.tmpdir(), prefix));
    folders.push(folder);
    await chmod(folder, 0o755);
    return folder;
  }

  async function createProject(): Promise<ScratchProject> {
    const root = await scratchFolder("pgjobs-project-");
    const sub = path.join(root, "sub", "dir");
    await mkdir(sub, { recursive: true });
    await writeFile(
      path.join(root, "pgjobs.config.mjs"),
      `import { tasks } from ${JSON.stringify(pathToFileURL(APP_TASKS).href)};\n` +
        `export default { tasks, migrations: ${JSON.stringify(APP_MIGRATIONS)} };\n`,
    );
    const project = {
      root,
      sub,
      dataDir: path.join(root, ".pgjobs"),
      env: cleanEnv({ LOG_LEVEL: "info", LOG_FORMAT: "json" }),
    };
    projects.push(project);
    return project;
  }

  /** Starts `pgjobs <args>` (the repo's CLI, or `cli`) in `cwd`, as `pgjobs worker` runs under npm start. */
  function startCli(args: string[], env: NodeJS.ProcessEnv, cwd: string, cli = CLI): CliProcess {
    const child = spawn(process.execPath, [cli, ...args], { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, "exit").then(([code]) => code as number | null);
    return {
      child,
      pid: child.pid!,
      output: () => output,
      exited,
      waitForOutput: (text, timeoutMs = 30_000) =>
        waitFor(
          `pgjobs process ${child.pid} to log "${text}"`,
          () => {
            if (output.includes(text)) return true;
            if (child.exitCode !== null || child.signalCode !== null) {
              throw new Error(`pgjobs process ${child.pid} exited before logging "${text}":\n${output}`);
            }
            return undefined;
          },
          { timeoutMs },
        ).then(() => {}),
    };
  }

  return { createProject, scratchFolder, startCli, track: (child: ChildProcess) => children.push(child) };
}

/** The pongs the ping task recorded on the server at `url`, in job order. */
export async function pongs(url: string): Promise<string[]> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const { rows } = await client.query<{ pong: string }>(
      "select result->>'pong' as pong from pgjobs.job_runs where state = 'succeeded' order by job_id",
    );
    return rows.map((row) => row.pong);
  } finally {
    await client.end();
  }
}

/** Every PostgreSQL cluster (a folder with PG_VERSION) under `folder`. */
export async function clustersUnder(folder: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(folder, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name === "PG_VERSION" && !entry.parentPath.includes(`${path.sep}base${path.sep}`)) {
      found.push(entry.parentPath);
    }
  }
  return found;
}

/** The embedded server running on `dataDir` (it must be ready). */
export async function runningServer(dataDir: string): Promise<{ pid: number; port: number; url: string }> {
  const found = await readPostmaster(dataDir);
  if (found.state !== "ready") throw new Error(`expected a ready embedded server in ${dataDir}, found ${found.state}`);
  return { pid: found.pid, port: found.port, url: embeddedUrl(found.port) };
}
