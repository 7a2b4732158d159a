/** Real `pgjobs worker` processes for the fault tests, and what they say. */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach } from "vitest";
import { waitFor } from "../support/wait.ts";

const FIXTURE = fileURLToPath(new URL("../fixtures/fault-worker.ts", import.meta.url));

export interface WorkerProcess {
  child: ChildProcess;
  /** graphile-worker's pool id: the worker's id in pgjobs.workers. */
  id: string;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Spawns workers; any left running are killed when the test file ends, or after each test with
 * `perTest` (so one test's idle workers cannot take the next test's jobs).
 */
export function useWorkerProcesses(options: { perTest?: boolean } = {}) {
  const children: ChildProcess[] = [];
  const killAll = () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  afterAll(killAll);
  if (options.perTest) afterEach(killAll);
  return async (url: string, env: Record<string, string> = {}): Promise<WorkerProcess> => {
    const child = spawn(process.execPath, [FIXTURE], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATABASE_URL: url,
        LOG_FORMAT: "json",
        LOG_LEVEL: "info",
        PGJOBS_POLL_INTERVAL_MS: "100",
        PGJOBS_LIVENESS_TIMEOUT_MS: "3000",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, "exit").then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
    const id = await waitFor(
      "the worker to say it is ready",
      () => {
        if (child.exitCode !== null)
          throw new Error(`the worker exited (code ${child.exitCode}) before it was ready:\n${output}`);
        return /"workerId":"(pool-[0-9a-f]+)"/.exec(output)?.[1];
      },
      { timeoutMs: 30_000 },
    );
    return { child, id, output: () => output, exited };
  };
}
