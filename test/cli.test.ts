import { execFile } from "node:child_process";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { useTestDatabase } from "./support/database.ts";
import { CLI, cleanEnv, runCli } from "./support/cli.ts";

const database = useTestDatabase();

describe("pgjobs add", () => {
  it("enqueues a valid job and prints its id", async () => {
    const result = await runCli(
      ["add", "pgjobs__ping", '{"message":"from the cli"}', "--json"],
      cleanEnv({ DATABASE_URL: database().url }),
    );
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const job = JSON.parse(result.stdout) as { id: string; taskName: string };
    expect(job.taskName).toBe("pgjobs__ping");
    const { rows } = await sql<{ id: string; payload: unknown }>`
      select id, payload from graphile_worker._private_jobs where id = ${job.id}`.execute(database().db);
    expect(rows).toEqual([{ id: job.id, payload: { message: "from the cli" } }]);
  });

  it("reads the payload from standard input with -", async () => {
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        [CLI, "add", "pgjobs__ping", "-", "--json"],
        { env: cleanEnv({ DATABASE_URL: database().url }), timeout: 60_000 },
        (error, stdout, stderr) => resolve({ code: error ? 1 : 0, stdout, stderr }),
      );
      child.stdin?.end('{"message":"from stdin"}');
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const job = JSON.parse(result.stdout) as { id: string };
    const { rows } = await sql<{ payload: unknown }>`
      select payload from graphile_worker._private_jobs where id = ${job.id}`.execute(database().db);
    expect(rows).toEqual([{ payload: { message: "from stdin" } }]);
  });

  it("refuses an unknown task with exit 1, naming it and the registered ones", async () => {
    const result = await runCli(["add", "emails__send", "{}"], cleanEnv({ DATABASE_URL: database().url }));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Unknown task "emails__send"');
    expect(result.stderr).toContain("Tasks this app defines: ");
    expect(result.stderr).toContain("pgjobs__ping");
  });

  it("refuses a payload that fails the task's schema, naming the field", async () => {
    const result = await runCli(["add", "pgjobs__ping", '{"message": ""}'], cleanEnv({ DATABASE_URL: database().url }));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Payload for task "pgjobs__ping" is invalid; nothing was enqueued.');
    expect(result.stderr).toMatch(/→ at message/);
  });

  it("refuses JSON that does not parse, with exit 2 and how to quote it", async () => {
    const result = await runCli(["add", "pgjobs__ping", "{message: hi}"], cleanEnv({ DATABASE_URL: database().url }));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("is not valid JSON");
  });

  it("lists every bad environment variable before doing anything", async () => {
    const result = await runCli(
      ["add", "pgjobs__ping", '{"message":"x"}'],
      cleanEnv({ DATABASE_URL: "not-a-url", PGJOBS_CONCURRENCY: "-3" }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("2 environment variables are wrong");
    expect(result.stderr).toContain("DATABASE_URL must be a PostgreSQL connection URL");
    expect(result.stderr).toContain("PGJOBS_CONCURRENCY must be at least 1");
  });
});

describe("pgjobs run", () => {
  it("runs a task in this process and prints its result", async () => {
    const result = await runCli(
      ["run", "pgjobs__ping", '{"message":"run inline"}', "--json"],
      cleanEnv({ DATABASE_URL: database().url }),
    );
    expect(result.stderr).toBe("");
    expect(JSON.parse(result.stdout)).toEqual({
      result: { pong: "run inline" },
    });
  });
});
