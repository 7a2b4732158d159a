/**
 * A transactional task that hangs past its timeout and ignores its signal, holding a row lock:
 * its transaction must not outlive the deadline. Its backend is terminated, so the lock goes,
 * no connection is left idle in transaction, the slot comes back, and the other jobs flow.
 */
import { sql } from "kysely";
import { beforeAll, describe, expect, it } from "vitest";
import { syncTaskRegistry } from "../../src/enqueue/sql-allowlist.ts";
import { waitForResult } from "../../src/history/wait-for-result.ts";
import { faultTasks } from "../fixtures/fault-tasks.ts";
import { useTestDatabase } from "../support/database.ts";
import { waitFor } from "../support/wait.ts";
import { useWorkerProcesses } from "./worker-process.ts";

const database = useTestDatabase();
const startWorker = useWorkerProcesses();

beforeAll(async () => {
  await syncTaskRegistry(database().db, faultTasks);
  await sql`create table public.fault_locks (key text primary key)`.execute(database().db);
  await sql`insert into public.fault_locks values ('account 7')`.execute(database().db);
});

describe("a transactional task that hangs past its timeout", () => {
  it("is timed_out, its locks and connection are freed, and 200 other jobs finish (concurrency 2)", async () => {
    const { db, pool, url } = database();
    // Four hanging jobs on the same row (each waits for the lock the previous one held), two of
    // them stuck inside an hour-long query: closing the connection alone would not stop those.
    const { rows: hanging } = await sql<{ id: string }>`
      select (graphile_worker.add_job('fault__hang_tx', json_build_object('key', 'account 7', 'inQuery', n % 2 = 0))).id
        from generate_series(1, 4) n`.execute(db);
    await sql`
      select graphile_worker.add_job('fault__noop', json_build_object('n', n)) from generate_series(1, 200) n`.execute(
      db,
    );
    await startWorker(url, { PGJOBS_CONCURRENCY: "2" });

    for (const { id } of hanging) {
      const outcome = await waitForResult(pool, id, { timeoutMs: 30_000 });
      expect(outcome).toMatchObject({ state: "timed_out", final: true });
      expect(outcome.error?.message).toContain("ran longer than its 500 ms timeout");
    }
    await waitFor(
      "the 200 other jobs to finish",
      async () => {
        const { rows } = await sql<{ n: string }>`
          select count(*) as n from pgjobs.job_runs where task = 'fault__noop' and state = 'succeeded'`.execute(db);
        return rows[0]!.n === "200" ? true : undefined;
      },
      { timeoutMs: 30_000 },
    );

    // The row lock went with the terminated transactions: we can take it at once.
    await db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ key: string }>`
        select key from public.fault_locks where key = 'account 7' for update nowait`.execute(trx);
      expect(rows).toHaveLength(1);
    });
    const { rows: stuck } = await sql<{ n: string }>`
      select count(*) as n from pg_stat_activity
       where datname = current_database() and (state like 'idle in transaction%' or query like '%pg_sleep(3600)%')
         and pid <> pg_backend_pid()`.execute(db);
    expect(stuck[0]!.n).toBe("0");
  }, 90_000);
});
