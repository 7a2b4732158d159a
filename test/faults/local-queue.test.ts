/**
 * A worker killed with a full local queue: it had fetched (and locked) 20 jobs but started only
 * the two its concurrency allows. History must not invent attempts for the 18 that never
 * started; `running` shows exactly the two task bodies; reaping returns the 18 untouched.
 */
import { sql } from "kysely";
import { beforeAll, describe, expect, it } from "vitest";
import { syncTaskRegistry } from "../../src/enqueue/sql-allowlist.ts";
import { faultTasks } from "../fixtures/fault-tasks.ts";
import { useTestDatabase } from "../support/database.ts";
import { waitFor } from "../support/wait.ts";
import { useWorkerProcesses } from "./worker-process.ts";

const database = useTestDatabase();
const startWorker = useWorkerProcesses();

beforeAll(async () => {
  await syncTaskRegistry(database().db, faultTasks);
});

describe("SIGKILL with a full local queue", () => {
  it("records only the attempts that started, and gives the prefetched jobs back as never taken", async () => {
    const { db, url } = database();
    await sql`
      select graphile_worker.add_job('fault__block', json_build_object('n', n)) from generate_series(1, 30) n`.execute(
      db,
    );
    const worker = await startWorker(url, { PGJOBS_CONCURRENCY: "2", PGJOBS_LOCAL_QUEUE_SIZE: "20" });
    const started = await waitFor("two task bodies to run", async () => {
      const running = await db
        .selectFrom("pgjobs.runs")
        .select("job_id")
        .where("state", "=", "running")
        .orderBy("job_id")
        .execute();
      return running.length === 2 ? running.map((row) => row.job_id) : undefined;
    });
    const lockedBy = async () => {
      const { rows } = await sql<{ n: string }>`
        select count(*) as n from graphile_worker._private_jobs where locked_by = ${worker.id}`.execute(db);
      return Number(rows[0]!.n);
    };
    expect(await lockedBy()).toBe(20);
    // The bodies that ran said so themselves: the same two jobs.
    const pings = await db.selectFrom("public.effects").select("job_id").orderBy("job_id").execute();
    expect(pings.map((ping) => ping.job_id)).toEqual(started);

    worker.child.kill("SIGKILL");
    await worker.exited;

    // Dead but not yet reaped: the two bodies still show as running, nothing is in history.
    const running = await db.selectFrom("pgjobs.runs").select("job_id").where("state", "=", "running").execute();
    expect(running.map((row) => row.job_id).sort()).toEqual(started);
    const { rows: historyRows } = await sql<{ n: string }>`select count(*) as n from pgjobs.job_runs`.execute(db);
    expect(historyRows[0]!.n).toBe("0");

    // What any live worker's heartbeat does once the dead one has been silent past the bound.
    await sql`select pgjobs.register_worker('pool-reaper', 'test', 0, 'test', 1, '{}')`.execute(db);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const { rows: reaped } = await sql<{ worker_id: string; abandoned: number; returned: number }>`
      select worker_id, abandoned, returned from pgjobs.heartbeat('pool-reaper', interval '1 second')
       where worker_id <> 'pool-reaper'`.execute(db);
    expect(reaped).toEqual([{ worker_id: worker.id, abandoned: 2, returned: 18 }]);

    const history = await db.selectFrom("pgjobs.job_runs").select(["job_id", "state", "attempt"]).execute();
    expect(history.map((run) => run.job_id).sort()).toEqual(started);
    expect(new Set(history.map((run) => `${run.attempt}:${run.state}`))).toEqual(new Set(["1:abandoned"]));
    expect(await lockedBy()).toBe(0);
    // The 18 prefetched jobs carry no attempt; the two that ran keep theirs.
    const { rows: attempts } = await sql<{ attempts: number; n: string }>`
      select attempts, count(*) as n from graphile_worker._private_jobs group by attempts order by attempts`.execute(
      db,
    );
    expect(attempts).toEqual([
      { attempts: 0, n: "28" },
      { attempts: 1, n: "2" },
    ]);
  }, 60_000);
});
