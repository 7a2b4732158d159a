/**
 * The README's quickstart, as a newcomer would run it: no DATABASE_URL, no Docker. `pgjobs worker`
 * starts an embedded PostgreSQL, a second process enqueues with `pgjobs add`, the effect shows,
 * Ctrl-C (SIGINT) stops everything, and a second start finds the same data.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { findRunningEmbeddedPostgres } from "../src/db/embedded.ts";
import { CLI, cleanEnv, runCli } from "./support/cli.ts";
import { waitFor } from "./support/wait.ts";

const children: ChildProcess[] = [];
let dataDir: string | undefined;
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

function startWorker(env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [CLI, "worker"], { env, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

async function pongs(url: string): Promise<string[]> {
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

describe("quickstart with no DATABASE_URL", () => {
  it("runs a job on an embedded PostgreSQL, stops on Ctrl-C and keeps its data", async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "pgjobs-quickstart-"));
    await chmod(dataDir, 0o755);
    const env = cleanEnv({ PGJOBS_DATA_DIR: dataDir, LOG_LEVEL: "info", LOG_FORMAT: "json" });

    const first = startWorker(env);
    await waitFor("the worker to say it is ready", () => (first.output().includes("worker ready") ? true : undefined));
    const url = await findRunningEmbeddedPostgres(dataDir);
    expect(url).toMatch(/^postgres:\/\/postgres:.*@127\.0\.0\.1:\d+\/postgres$/);

    // A second shell: `pgjobs add` finds the running embedded server through the data folder.
    const added = await runCli(["add", "pgjobs__ping", '{"message":"hello from the quickstart"}'], env);
    expect(added.stderr).toBe("");
    expect(added.stdout).toMatch(/^Enqueued job \d+ \(pgjobs__ping\)/);
    await waitFor("the ping's result", async () =>
      (await pongs(url!)).includes("hello from the quickstart") ? true : undefined,
    );

    first.child.kill("SIGINT");
    const [code] = (await once(first.child, "exit")) as [number | null];
    expect(code).toBe(0);
    expect(first.output()).toContain("worker stopped cleanly");
    expect(first.output()).toContain("embedded PostgreSQL stopped");
    expect(await findRunningEmbeddedPostgres(dataDir)).toBeUndefined();

    const second = startWorker(env);
    await waitFor("the second start to be ready", () => (second.output().includes("worker ready") ? true : undefined));
    expect(second.output()).not.toContain("creating the embedded PostgreSQL cluster");
    const secondUrl = await findRunningEmbeddedPostgres(dataDir);
    expect(await pongs(secondUrl!)).toEqual(["hello from the quickstart"]);
    second.child.kill("SIGTERM");
    const [secondCode] = (await once(second.child, "exit")) as [number | null];
    expect(secondCode).toBe(0);
  });
});

describe("losing the database", () => {
  it("makes the worker exit non-zero, once, saying why, so its supervisor restarts it", async () => {
    // A fresh data folder: the first start also runs the cluster's initialisation.
    const lostDir = await mkdtemp(path.join(os.tmpdir(), "pgjobs-lost-db-"));
    await chmod(lostDir, 0o755);
    try {
      const worker = startWorker(cleanEnv({ PGJOBS_DATA_DIR: lostDir, LOG_LEVEL: "info", LOG_FORMAT: "json" }));
      await waitFor("the worker to say it is ready", () =>
        worker.output().includes("worker ready") ? true : undefined,
      );
      const pid = Number((await readFile(path.join(lostDir, "pg17", "postmaster.pid"), "utf8")).split("\n")[0]);
      process.kill(pid, "SIGKILL"); // the server dies under the worker
      const [code] = (await once(worker.child, "exit")) as [number | null];
      expect(code).toBe(1);
      const lostMessages = worker.output().match(/lost the connection to PostgreSQL/g) ?? [];
      expect(lostMessages).toHaveLength(1);
    } finally {
      await rm(lostDir, { recursive: true, force: true });
    }
  });
});
