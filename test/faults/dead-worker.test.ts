/**
 * A worker killed mid-job (SIGKILL: no drain, no goodbye) while another runs. Its job runs again
 * once the liveness bound has passed, not after graphile-worker's 4-hour lock expiry; history
 * shows the lost attempt then the successful one; the transactional effect happens once; and
 * the job queued behind it in the same named queue is not stuck behind a dead lock.
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
const LIVENESS_MS = 3000;

beforeAll(async () => {
  await syncTaskRegistry(database().db, faultTasks);
});

describe("a worker killed in the middle of a job", () => {
  it("is reaped within the liveness bound; the job runs again, once in effect, and its queue moves on", async () => {
    const { db, pool, url } = database();
    const env = { PGJOBS_LIVENESS_TIMEOUT_MS: String(LIVENESS_MS), PGJOBS_CONCURRENCY: "2" };
    const workers = [await startWorker(url, env), await startWorker(url, env)];
    const { rows } = await sql<{ id: string }>`
      select (graphile_worker.add_job('fault__effect', '{"marker":"charge card 4242","ms":5000}'::json,
                                      queue_name => 'fault_serial')).id
      union all
      select (graphile_worker.add_job('fault__effect', '{"marker":"after it","ms":0}'::json,
                                      queue_name => 'fault_serial')).id`.execute(db);
    const [slow, behind] = rows.map((row) => row.id) as [string, string];

    // Kill the worker whose task body runs the slow job, 1 s into it.
    const runningOn = await waitFor("the slow job to run", async () => {
      const row = await db
        .selectFrom("pgjobs.runs")
        .select(["worker_id", "started_at"])
        .where("job_id", "=", slow)
        .where("state", "=", "running")
        .executeTakeFirst();
      return row?.worker_id ?? undefined;
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const victim = workers.find((worker) => worker.id === runningOn)!;
    victim.child.kill("SIGKILL");
    expect(await victim.exited).toMatchObject({ signal: "SIGKILL" });

    // The other worker reaps it, and the job runs again: within the bound + the job's 5 s (+ slack
    // for this shared machine: this is a deadline on the wait, not a measurement).
    const outcome = await waitForResult(pool, slow, { timeoutMs: LIVENESS_MS + 5000 + 10_000 });
    expect(outcome).toMatchObject({ state: "succeeded" });
    const history = await db
      .selectFrom("pgjobs.job_runs")
      .select(["attempt", "state", "worker_id", "note"])
      .where("job_id", "=", slow)
      .orderBy("id")
      .execute();
    expect(history.map((run) => [run.attempt, run.state])).toEqual([
      [1, "abandoned"],
      [2, "succeeded"],
    ]);
    expect(history[0]).toMatchObject({ worker_id: victim.id });
    expect(history[0]!.note).toContain("the reaper");
    const survivor = workers.find((worker) => worker !== victim)!;
    expect(history[1]).toMatchObject({ worker_id: survivor.id });
    expect(survivor.output()).toContain(`worker ${victim.id}`);

    // The effect of the killed attempt rolled back with its transaction: it happened once.
    const effects = await db.selectFrom("public.effects").select("message").where("job_id", "=", slow).execute();
    expect(effects).toEqual([{ message: "charge card 4242" }]);

    // The job behind it in the same named queue ran too, and nothing is left locked.
    expect(await waitForResult(pool, behind, { timeoutMs: 10_000 })).toMatchObject({ state: "succeeded" });
    const { rows: locked } = await sql<{ n: string }>`
      select count(*) as n from graphile_worker._private_job_queues where locked_by is not null`.execute(db);
    expect(locked[0]!.n).toBe("0");
    const dead = await db
      .selectFrom("pgjobs.workers")
      .selectAll()
      .where("id", "=", victim.id)
      .executeTakeFirstOrThrow();
    expect(dead).toMatchObject({ state: "lost" });
    expect(dead.stop_reason).toContain(`reaped by worker ${survivor.id}`);
  }, 60_000);
});
