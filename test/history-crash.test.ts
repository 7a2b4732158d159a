/**
 * At-least-once delivery, effectively-once effects: graphile-worker reruns a job whose worker died
 * after the job's transaction committed; pgjobs' rerun sees the success row and does not repeat
 * the effect. Its own file: no other worker may take the job from the worker that must die.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { syncTaskRegistry } from "../src/enqueue/sql-allowlist.ts";
import { waitForResult } from "../src/history/wait-for-result.ts";
import { recordEffectTask, testTasks } from "./fixtures/test-tasks.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();
const children: ChildProcess[] = [];

beforeAll(async () => {
  await syncTaskRegistry(database().db, testTasks);
});
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

async function runsOf(jobId: string) {
  return database().db.selectFrom("pgjobs.job_runs").selectAll().where("job_id", "=", jobId).orderBy("id").execute();
}

describe("effectively once", () => {
  it("a worker killed after the job's transaction committed does not repeat the effect on the rerun", async () => {
    const { db, url, pool } = database();
    const { rows } = await sql<{ id: string }>`
      select id from graphile_worker.add_job('test__record_effect', '{"marker":"charge card 4242"}'::json, queue_name => 'crash_test')`.execute(
      db,
    );
    const jobId = rows[0]!.id;
    const fixture = fileURLToPath(new URL("./fixtures/crash-after-commit.ts", import.meta.url));
    const child = spawn(process.execPath, [fixture, url], { stdio: "ignore" });
    children.push(child);
    const [, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
    expect(signal).toBe("SIGKILL");

    // The effect and the success row committed together; graphile-worker never heard.
    const effects = () => db.selectFrom("public.effects").select("message").where("job_id", "=", jobId).execute();
    expect(await effects()).toEqual([{ message: "charge card 4242" }]);
    expect((await runsOf(jobId)).map((run) => run.state)).toEqual(["succeeded"]);
    const { rows: locked } = await sql<{ locked_by: string }>`
      select locked_by from graphile_worker._private_jobs where id = ${jobId}::bigint`.execute(db);
    expect(locked[0]?.locked_by).toMatch(/\S/);

    // What the dead-worker sweep (or an operator) does: unlock the dead worker's jobs.
    await sql`select graphile_worker.force_unlock_workers(array[${locked[0]!.locked_by}])`.execute(db);
    await startWorker(database(), { tasks: testTasks });
    // Its result is known already (the success committed); the rerun only has to notice.
    const outcome = await waitForResult(pool, jobId, { timeoutMs: 20_000 });
    expect(outcome).toMatchObject({ state: "succeeded", result: { marker: "charge card 4242", attempt: 1 } });
    await waitFor("the rerun to complete the job", async () => {
      const { rows: left } = await sql`select 1 from graphile_worker._private_jobs where id = ${jobId}::bigint`.execute(
        db,
      );
      return left.length === 0 ? true : undefined;
    });
    expect(await effects()).toEqual([{ message: "charge card 4242" }]);
    const runs = await runsOf(jobId);
    expect(runs.map((run) => [run.attempt, run.state])).toEqual([
      [1, "succeeded"],
      [2, "succeeded"],
    ]);
    expect(runs[1]!.note).toBe("already succeeded in attempt 1; not run again");
    expect(recordEffectTask.options.transactional).toBe(true);
  });
});
