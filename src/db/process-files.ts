/**
 * Files that stand for a live process: the embedded server's start lock and its leases. A file
 * names its process by pid and, on Linux, by the process's start time, so a pid the kernel has
 * since given to another program does not pass for the process that wrote the file. A file whose
 * process is gone is stale: whoever finds it may remove it.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { link, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

/** A process as a file records it. */
export interface ProcessIdentity {
  pid: number;
  /** Linux: the process's start time in clock ticks since boot (/proc/<pid>/stat); absent elsewhere. */
  start?: string;
}

/** Whether the process is running: not gone, not a zombie, and (where known) not a reused pid. */
export function isProcessAlive(process_: ProcessIdentity): boolean {
  try {
    process.kill(process_.pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to another user (the `postgres` OS user, say).
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const stat = procStat(process_.pid);
  if (stat === "gone") return false;
  if (stat === undefined) return true; // no /proc: the signal probe is all there is
  if (stat.state === "Z" || stat.state === "X") return false; // exited, not yet reaped
  return process_.start === undefined || process_.start === stat.start;
}

export function currentProcess(): ProcessIdentity {
  return identify(process.pid);
}

function identify(pid: number): ProcessIdentity {
  const stat = procStat(pid);
  return typeof stat === "object" ? { pid, start: stat.start } : { pid };
}

/** /proc/<pid>/stat's state and start time; undefined without /proc, "gone" when the pid is free. */
function procStat(pid: number): { state: string; start: string } | "gone" | undefined {
  if (process.platform !== "linux") return undefined;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? "gone" : undefined;
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const [state, start] = [fields[0], fields[19]]; // fields 3 and 22 of proc(5)
  return state && start ? { state, start } : undefined;
}

/** The process a lock file names, and what it is doing while it holds the lock. */
export interface LockHolder extends ProcessIdentity {
  doing: string;
  token: string;
}

export class LockWaitTimeoutError extends Error {
  readonly holder: LockHolder;
  constructor(file: string, holder: LockHolder, waitedMs: number) {
    super(
      `pgjobs process ${holder.pid} has been ${holder.doing} for over ${Math.round(waitedMs / 1000)} s and still ` +
        `holds ${file}. If it is stuck, stop it; if no such process runs, delete the file.`,
    );
    this.name = "LockWaitTimeoutError";
    this.holder = holder;
  }
}

export interface HeldLock {
  release(): Promise<void>;
}

/**
 * Takes the lock file `file` for this process, waiting while a live process holds it and
 * removing it when its holder is gone. `onWait` hears once per holder that this process waits;
 * one holder may keep it waiting `timeoutMs`, then LockWaitTimeoutError names it.
 *
 * The file is written in full under a name of its own, then hard-linked into place: link() fails
 * when the lock exists, so taking it is atomic and a reader never sees half a file.
 */
export async function acquireLockFile(
  file: string,
  doing: string,
  options: { timeoutMs: number; onWait(holder: LockHolder): void },
): Promise<HeldLock> {
  const mine: LockHolder = { ...currentProcess(), doing, token: randomUUID() };
  const text = JSON.stringify(mine);
  const draft = `${file}.${mine.token}`;
  await writeFile(draft, text);
  try {
    let waitingFor: { token: string; since: number } | undefined;
    for (;;) {
      try {
        await link(draft, file);
        return { release: () => removeFileIfUnchanged(file, text) };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const found = await readOrUndefined(file);
      if (found === undefined) continue; // released in between: try again
      const holder = parseHolder(found);
      if (!holder || !isProcessAlive(holder)) {
        await removeFileIfUnchanged(file, found); // its holder died holding it
        continue;
      }
      if (waitingFor?.token !== holder.token) {
        waitingFor = { token: holder.token, since: Date.now() };
        options.onWait(holder);
      } else if (Date.now() - waitingFor.since > options.timeoutMs) {
        throw new LockWaitTimeoutError(file, holder, Date.now() - waitingFor.since);
      }
      await sleep(100);
    }
  } finally {
    await unlink(draft).catch(() => {});
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockHolder>;
    return Number.isInteger(value.pid) && typeof value.token === "string" && typeof value.doing === "string"
      ? (value as LockHolder)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes `file` only if it still holds `expected`. Moving it aside first makes the check and the
 * removal one step for everyone else; a file that changed in between (a live holder's, taken
 * after this process looked) goes back where it was.
 */
async function removeFileIfUnchanged(file: string, expected: string): Promise<void> {
  const aside = `${file}.${randomUUID()}.removing`;
  try {
    await rename(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  try {
    if ((await readFile(aside, "utf8")) !== expected) await link(aside, file).catch(() => {});
  } finally {
    await unlink(aside).catch(() => {});
  }
}

async function readOrUndefined(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}
