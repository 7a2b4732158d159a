/**
 * A worker pointed at a transaction-mode pooler (PgBouncer here; Supabase's port 6543 is one)
 * refuses to start and says what to use instead; told it is one, it runs without prepared
 * statements and LISTEN. Behind a session-mode pooler it runs as usual. Real PgBouncer
 * processes, started by the test in front of the test database.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../../src/cli/exit-codes.ts";
import { createPool } from "../../src/db/connection.ts";
import { findFreePort } from "../../src/db/embedded.ts";
import { detectConnectionKind } from "../../src/db/pooler.ts";
import { syncTaskRegistry } from "../../src/enqueue/sql-allowlist.ts";
import { waitForResult } from "../../src/history/wait-for-result.ts";
import { faultTasks } from "../fixtures/fault-tasks.ts";
import { useTestDatabase } from "../support/database.ts";
import { waitFor } from "../support/wait.ts";
import { useWorkerProcesses } from "./worker-process.ts";

const database = useTestDatabase();
const startWorker = useWorkerProcesses();
const bouncers: ChildProcess[] = [];
let scratch: string;

beforeAll(async () => {
  await syncTaskRegistry(database().db, faultTasks);
  scratch = await mkdtemp(path.join(os.tmpdir(), "pgjobs-pgbouncer-"));
  await chmod(scratch, 0o777);
});
afterAll(async () => {
  for (const bouncer of bouncers) bouncer.kill("SIGKILL");
  await rm(scratch, { recursive: true, force: true });
});

/** A PgBouncer in `mode` in front of the test database; returns its URL. */
async function startPgBouncer(mode: "transaction" | "session"): Promise<string> {
  const target = new URL(database().url);
  const port = await findFreePort();
  const config = path.join(scratch, `${mode}.ini`);
  await writeFile(
    config,
    [
      "[databases]",
      `pooled = host=${target.hostname} port=${target.port || 5432} dbname=${target.pathname.slice(1)} user=postgres`,
      "[pgbouncer]",
      `listen_addr = 127.0.0.1`,
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${path.join(scratch, "users.txt")}`,
      `pool_mode = ${mode}`,
      "default_pool_size = 4",
      "max_client_conn = 100",
      `logfile = ${path.join(scratch, `${mode}.log`)}`,
      "",
    ].join("\n"),
  );
  await writeFile(path.join(scratch, "users.txt"), '"postgres" ""\n');
  // PgBouncer refuses to run as root; -u drops to the postgres OS user (present with PostgreSQL).
  const asRoot = process.getuid?.() === 0;
  const bouncer = spawn(execFileSync("which", ["pgbouncer"], { encoding: "utf8" }).trim(), [
    ...(asRoot ? ["-u", "postgres"] : []),
    config,
  ]);
  bouncers.push(bouncer);
  const url = `postgres://postgres@127.0.0.1:${port}/pooled`;
  await waitFor("PgBouncer to accept connections", async () => {
    const pool = createPool(url, { max: 1 });
    try {
      await pool.query("select 1");
      return true;
    } catch {
      return undefined;
    } finally {
      await pool.end();
    }
  });
  return url;
}

describe("transaction-mode pooler", () => {
  let url: string;
  beforeAll(async () => {
    url = await startPgBouncer("transaction");
  });

  it("is detected", async () => {
    const pool = createPool(url, { max: 4 });
    try {
      expect(await detectConnectionKind(pool, url)).toMatchObject({ kind: "transaction-pooler" });
    } finally {
      await pool.end();
    }
    const direct = createPool(database().url, { max: 4 });
    try {
      expect(await detectConnectionKind(direct, database().url)).toMatchObject({ kind: "direct" });
    } finally {
      await direct.end();
    }
  });

  it("a worker refuses to start behind it, saying what to use instead, and exits non-zero", async () => {
    await expect(startWorker(url)).rejects.toThrow(/exited \(code 1\).*transaction-mode pooler.*direct connection/s);
  });

  it("told it is one (PGJOBS_TRANSACTION_POOLER=true), a worker runs jobs without LISTEN or prepared statements", async () => {
    const worker = await startWorker(url, { PGJOBS_TRANSACTION_POOLER: "true" });
    const { rows } = await sql<{ id: string }>`
      select (graphile_worker.add_job('fault__effect', '{"marker":"through the pooler"}'::json)).id`.execute(
      database().db,
    );
    const outcome = await waitForResult(database().pool, rows[0]!.id, { timeoutMs: 20_000 });
    expect(outcome).toMatchObject({ state: "succeeded" });
    worker.child.kill("SIGTERM");
    expect((await worker.exited).code).toBe(EXIT.OK);
  });
});

describe("session-mode pooler", () => {
  it("is detected, and a worker runs behind it as usual", async () => {
    const url = await startPgBouncer("session");
    const pool = createPool(url, { max: 4 });
    try {
      expect(await detectConnectionKind(pool, url)).toMatchObject({ kind: "session-pooler" });
    } finally {
      await pool.end();
    }
    const worker = await startWorker(url);
    worker.child.kill("SIGTERM");
    expect((await worker.exited).code).toBe(EXIT.OK);
  });
});
