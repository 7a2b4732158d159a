/**
 * One embedded server per data folder, shared by every pgjobs process of the project (the
 * worker, `pgjobs add` from any subfolder, a second worker) and stopped with the last of them.
 *
 * In the data folder:
 *   pg17/            the cluster; PostgreSQL's own pg17/postmaster.pid says which server runs it
 *   leases/<pid>-…   one file per process using the server, removed when it is done with it
 *   start.lock       held while a process finds, starts or adopts the server and takes its lease,
 *                    and while the last one out decides to stop it: so a process never connects
 *                    to a server that is being stopped, and two starts never race
 *
 * A server is used only when postmaster.pid names a live PostgreSQL on this cluster. One still
 * running after every process that leased it died (`kill -9` of the worker) is adopted, and the
 * log says so. Every decision is made holding start.lock; a process that finds it held says once
 * whom it waits for.
 */
import { randomUUID } from "node:crypto";
import { mkdir, readdir, readFile, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../logger.ts";
import {
  dataFolderError,
  embeddedUrl,
  locateEmbeddedPostgres,
  type PostmasterState,
  readPostmaster,
  startEmbeddedPostgres,
  stopPostmaster,
} from "./embedded.ts";
import {
  acquireLockFile,
  currentProcess,
  type HeldLock,
  isProcessAlive,
  type LockHolder,
  type ProcessIdentity,
} from "./process-files.ts";

/** How long one holder of start.lock may keep another process waiting (an initdb takes seconds). */
const LOCK_WAIT_MS = 60_000;
/** How long a server may take to become ready, or to stop, before this process gives up on it. */
const SERVER_WAIT_MS = 60_000;
const STOP_WAIT_MS = 30_000;

export interface SharedEmbeddedServer {
  url: string;
  port: number;
  /** Gives up this process's lease; the last process to do so stops the server. Idempotent. */
  release(): Promise<void>;
}

interface Lease extends ProcessIdentity {
  file: string;
}

/**
 * The data folder's server, started or adopted if need be, leased to this process until
 * release(). Starting, adopting and stopping are logged at info; with `narrate` (a worker, whose
 * log tells the server's story) so are sharing it and leaving it running for others, which a
 * command such as `pgjobs add` logs at debug to keep its output its own.
 */
export async function useEmbeddedPostgres(
  dataDir: string,
  logger: Logger,
  options: { narrate?: boolean } = {},
): Promise<SharedEmbeddedServer> {
  locateEmbeddedPostgres(); // before touching the folder: without the package nothing here can work
  const lock = await lockDataFolder(dataDir, "starting", logger);
  let lease: string | undefined;
  let narrate = options.narrate ?? false;
  let port: number;
  try {
    const others = await liveLeases(dataDir);
    lease = await takeLease(dataDir);
    const found = await settledPostmaster(dataDir, logger);
    if (found.state === "ready") {
      port = found.port;
      if (others.live.length > 0) {
        logger[narrate ? "info" : "debug"](
          { postgresPid: found.pid, port, users: pids(others.live) },
          `using the embedded PostgreSQL (pid ${found.pid}, port ${port}) that pgjobs ${processes(others.live)} also ${byCount(others.live, "uses", "use")}`,
        );
      } else {
        narrate = true;
        logger.info(
          { postgresPid: found.pid, port, dataDir },
          `adopted the embedded PostgreSQL (pid ${found.pid}, port ${port}) ` +
            (others.dead.length > 0
              ? `that pgjobs ${processes(others.dead)} left running when ${byCount(others.dead, "it", "they")} died`
              : "that was running with no pgjobs process using it") +
            "; it stops when the last pgjobs process using it exits",
        );
      }
    } else {
      port = (await startEmbeddedPostgres(dataDir, logger)).port;
      narrate = true;
    }
  } catch (error) {
    if (lease) await unlink(lease).catch(() => {});
    throw error;
  } finally {
    await lock.release();
  }
  const leaseFile = lease;
  let released: Promise<void> | undefined;
  return {
    url: embeddedUrl(port),
    port,
    release: () => (released ??= stopIfLast(dataDir, leaseFile, narrate, logger)),
  };
}

/** Removes this process's lease and, holding the lock, stops the server if nobody else uses it. */
async function stopIfLast(dataDir: string, lease: string, narrate: boolean, logger: Logger): Promise<void> {
  const lock = await lockDataFolder(dataDir, "stopping", logger);
  try {
    await unlink(lease).catch(() => {});
    const { live } = await liveLeases(dataDir);
    if (live.length > 0) {
      // A worker, or whoever started or adopted the server, says why it did not stop it.
      logger[narrate ? "info" : "debug"](
        { users: pids(live) },
        `embedded PostgreSQL keeps running: pgjobs ${processes(live)} still ${byCount(live, "uses", "use")} it`,
      );
      return;
    }
    const found = await readPostmaster(dataDir);
    if (found.state === "none" || found.state === "foreign") return;
    if (await stopPostmaster(found.pid, STOP_WAIT_MS)) {
      logger.info({ dataDir, postgresPid: found.pid }, "embedded PostgreSQL stopped");
    } else {
      logger.warn(
        { dataDir, postgresPid: found.pid },
        `the embedded PostgreSQL (pid ${found.pid}) did not stop within ${STOP_WAIT_MS / 1000} s; the next start adopts it`,
      );
    }
  } finally {
    await lock.release();
  }
}

/**
 * The server as it is once no start or stop is under way: a server a dead process was starting
 * is waited for, one that is stopping is let go, and a postmaster.pid whose pid now belongs to
 * another program is removed (PostgreSQL would refuse to start over it).
 */
async function settledPostmaster(dataDir: string, logger: Logger): Promise<PostmasterState> {
  const deadline = Date.now() + SERVER_WAIT_MS;
  for (;;) {
    const found = await readPostmaster(dataDir);
    if (found.state === "foreign") {
      logger.info(
        { file: found.file, otherPid: found.pid },
        `removing a stale ${found.file}: its process ${found.pid} is not this cluster's PostgreSQL`,
      );
      await unlink(found.file).catch(() => {});
      return { state: "none" };
    }
    if (found.state === "none" || found.state === "ready") return found;
    if (Date.now() > deadline) {
      throw new Error(
        `The embedded PostgreSQL in ${dataDir} (pid ${found.pid}) has been ${found.state} for over ` +
          `${SERVER_WAIT_MS / 1000} s. Stop it (kill -INT ${found.pid}) and start again.`,
      );
    }
    await sleep(100);
  }
}

async function lockDataFolder(dataDir: string, doing: "starting" | "stopping", logger: Logger): Promise<HeldLock> {
  try {
    await mkdir(path.join(dataDir, "leases"), { recursive: true });
    return await acquireLockFile(path.join(dataDir, "start.lock"), `${doing} the embedded PostgreSQL in ${dataDir}`, {
      timeoutMs: LOCK_WAIT_MS,
      onWait: (holder: LockHolder) =>
        logger.info(
          { holder: holder.pid, dataDir },
          `waiting for pgjobs process ${holder.pid}, which is ${holder.doing}`,
        ),
    });
  } catch (error) {
    throw dataFolderError(dataDir, error);
  }
}

async function takeLease(dataDir: string): Promise<string> {
  const me = currentProcess();
  const file = path.join(dataDir, "leases", `${me.pid}-${randomUUID()}.json`);
  await writeFile(file, JSON.stringify({ ...me, argv: process.argv.slice(2) }));
  return file;
}

/** The leases whose processes run; those of dead processes are removed (and returned as dead). */
async function liveLeases(dataDir: string): Promise<{ live: Lease[]; dead: Lease[] }> {
  const folder = path.join(dataDir, "leases");
  const live: Lease[] = [];
  const dead: Lease[] = [];
  for (const name of await readdir(folder)) {
    const file = path.join(folder, name);
    let holder: ProcessIdentity | undefined;
    try {
      holder = JSON.parse(await readFile(file, "utf8")) as ProcessIdentity;
    } catch {
      // Unreadable or half-written (a process killed while writing it): nobody's lease.
    }
    if (holder && Number.isInteger(holder.pid) && isProcessAlive(holder)) {
      live.push({ ...holder, file });
    } else {
      if (holder && Number.isInteger(holder.pid)) dead.push({ ...holder, file });
      await unlink(file).catch(() => {});
    }
  }
  return { live, dead };
}

function pids(leases: Lease[]): number[] {
  return [...new Set(leases.map((lease) => lease.pid))];
}

function processes(leases: Lease[]): string {
  return `${byCount(leases, "process", "processes")} ${pids(leases).join(", ")}`;
}

/** The singular or plural word for the processes holding `leases`. */
function byCount(leases: Lease[], one: string, many: string): string {
  return pids(leases).length === 1 ? one : many;
}
