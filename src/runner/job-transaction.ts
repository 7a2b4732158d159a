/**
 * A transactional task's transaction, on a connection the runner owns so it can take it back.
 * Past the attempt's deadline the runner terminates that connection's backend: PostgreSQL rolls
 * the transaction back and frees its row locks, and the pool gets its slot back, whatever the
 * task's code is doing. (Cancelling only interrupts a running statement and leaves a session
 * idle in transaction holding its locks; statement and idle-in-transaction timeouts bound each
 * statement or pause, not the attempt. Terminating is the one that ends it at the deadline.)
 */
import { type Kysely, sql } from "kysely";
import type pg from "pg";
import type { Database } from "../db/schema.ts";
import { dbOverClient, releaseDeliberately } from "../db/connection.ts";
import { settleBefore } from "./deadline.ts";

export interface JobTransactionOptions {
  /** Aborts at the attempt's deadline; the transaction is then terminated. */
  deadline?: AbortSignal;
  /** Built when the deadline passes; what the returned promise rejects with. */
  deadlineError?: () => Error;
  /** True when `client.processID` is the backend's pid (a direct connection, not a pooler). */
  trustProcessId?: boolean;
}

export async function runInJobTransaction<T>(
  pool: pg.Pool,
  work: (trx: Kysely<Database>) => Promise<T>,
  options: JobTransactionOptions = {},
): Promise<T> {
  const client = await pool.connect();
  let terminated = false;
  try {
    const db = dbOverClient(client);
    const { deadline } = options;
    if (deadline === undefined) return await db.transaction().execute(work);
    const backendPid = options.trustProcessId
      ? (client as pg.PoolClient & { processID: number }).processID
      : (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db)).rows[0]!.pid;
    return await settleBefore(db.transaction().execute(work), deadline, async () => {
      // The task outlived its deadline: end its session, so nothing it holds survives it.
      terminated = true;
      releaseDeliberately(client);
      await pool.query("select pg_terminate_backend($1)", [backendPid]).catch(() => {});
      throw options.deadlineError?.() ?? new Error("the job's transaction passed its deadline");
    });
  } finally {
    // A failed transaction was rolled back by kysely and its connection is reusable (the pool
    // drops a broken one); a terminated one goes with its session.
    client.release(terminated || undefined);
  }
}
