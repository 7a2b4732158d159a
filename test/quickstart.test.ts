/**
 * The README's quickstart, as a newcomer runs it: in a project of their own, with no
 * DATABASE_URL and no Docker. `pgjobs worker` at the project's root starts an embedded
 * PostgreSQL under `.pgjobs`; `pgjobs add` from a subfolder reaches the same server; Ctrl-C
 * (SIGINT) stops everything; a second start finds the same data.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readPostmaster } from "../src/db/embedded.ts";
import { cleanEnv, runCli } from "./support/cli.ts";
import { clustersUnder, pongs, runningServer, useScratchProjects } from "./support/scratch-project.ts";
import { waitFor } from "./support/wait.ts";

const scratch = useScratchProjects();

describe("quickstart with no DATABASE_URL", () => {
  it("a worker at the project's root and `pgjobs add` from a subfolder share one server; Ctrl-C stops it, the data stays", async () => {
    const project = await scratch.createProject();
    const first = scratch.startCli(["worker"], project.env, project.root);
    await first.waitForOutput("worker ready");
    const server = await runningServer(project.dataDir);

    // A second shell, in a subfolder: `pgjobs add` finds the project, its data folder and the
    // worker's server, and leaves that server running when it is done.
    const added = await runCli(
      ["add", "pgjobs__ping", '{"message":"hello from a subfolder"}'],
      project.env,
      project.sub,
    );
    expect(added).toMatchObject({ code: 0, stderr: "" });
    expect(added.stdout).toMatch(/^Enqueued job \d+ \(pgjobs__ping\)/);
    await waitFor("the ping's result", async () =>
      (await pongs(server.url)).includes("hello from a subfolder") ? true : undefined,
    );
    expect(await runningServer(project.dataDir)).toEqual(server);
    expect(await clustersUnder(project.root)).toEqual([path.join(project.dataDir, "pg17")]);

    first.child.kill("SIGINT");
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain("worker stopped cleanly");
    expect(first.output()).toContain("embedded PostgreSQL stopped");
    expect(await readPostmaster(project.dataDir)).toEqual({ state: "none" });

    const second = scratch.startCli(["worker"], project.env, project.root);
    await second.waitForOutput("worker ready");
    expect(second.output()).not.toContain("creating the embedded PostgreSQL cluster");
    expect(await pongs((await runningServer(project.dataDir)).url)).toEqual(["hello from a subfolder"]);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    expect(await readPostmaster(project.dataDir)).toEqual({ state: "none" });
  });
});

describe("losing the database", () => {
  it("makes the worker exit non-zero, once, saying why, so its supervisor restarts it", async () => {
    // A fresh data folder: the first start also runs the cluster's initialisation.
    const lostDir = await scratch.scratchFolder("pgjobs-lost-db-");
    const worker = scratch.startCli(
      ["worker"],
      cleanEnv({ PGJOBS_DATA_DIR: lostDir, LOG_LEVEL: "info", LOG_FORMAT: "json" }),
      process.cwd(),
    );
    await worker.waitForOutput("worker ready");
    const pid = Number((await readFile(path.join(lostDir, "pg17", "postmaster.pid"), "utf8")).split("\n")[0]);
    process.kill(pid, "SIGKILL"); // the server dies under the worker
    expect(await worker.exited).toBe(1);
    const lostMessages = worker.output().match(/lost the connection to PostgreSQL/g) ?? [];
    expect(lostMessages).toHaveLength(1);
  });
});
