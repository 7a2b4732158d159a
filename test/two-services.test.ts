/**
 * Two services (or a service and its canary) share one database, each with its own task list.
 * SQL enqueue (pgjobs.enqueue, add_job) of either's tasks must work before, during and after
 * each restarts: a worker's start registers its tasks and never removes the other's.
 */
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { waitForResult } from "../src/history/wait-for-result.ts";
import { defineTask } from "../src/index.ts";
import type { PgjobsWorker } from "../src/runner/worker.ts";
import { useTestDatabase } from "./support/database.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

const billingTask = defineTask({
  name: "billing__invoice",
  payload: z.object({ n: z.number() }),
  run: (payload) => Promise.resolve({ invoiced: payload.n }),
});
const mailTask = defineTask({
  name: "mail__send",
  payload: z.object({ n: z.number() }),
  run: (payload) => Promise.resolve({ sent: payload.n }),
});
const services = { billing: [billingTask], mail: [mailTask] } as const;
type Service = keyof typeof services;
const taskOf: Record<Service, string> = { billing: "billing__invoice", mail: "mail__send" };

let n = 0;
/** Enqueues one job of each service's task from SQL, by both doors; returns their ids by service. */
async function enqueueFromSql(): Promise<Record<Service, string[]>> {
  const ids: Record<Service, string[]> = { billing: [], mail: [] };
  for (const service of ["billing", "mail"] as const) {
    n += 1;
    const { rows } = await sql<{ via_enqueue: string; via_add_job: string }>`
      select pgjobs.enqueue(${taskOf[service]}, jsonb_build_object('n', ${n}::int)) as via_enqueue,
             (graphile_worker.add_job(${taskOf[service]}, json_build_object('n', ${n}::int))).id as via_add_job`.execute(
      database().db,
    );
    ids[service].push(String(rows[0]!.via_enqueue), String(rows[0]!.via_add_job));
  }
  return ids;
}

async function expectRun(jobIds: string[]): Promise<void> {
  for (const id of jobIds) {
    expect(await waitForResult(database().pool, id, { timeoutMs: 20_000 }), `job ${id}`).toMatchObject({
      state: "succeeded",
    });
  }
}

async function expectWaiting(jobIds: string[]): Promise<void> {
  const { rows } = await sql<{ id: string }>`
    select id from graphile_worker.jobs where id = any(${jobIds}::bigint[]) and attempts = 0`.execute(database().db);
  expect(rows.map((row) => String(row.id)).sort()).toEqual([...jobIds].sort());
}

describe("two services with different task lists on one database", () => {
  it("SQL enqueue of either's tasks works before, during and after each restarts", async () => {
    const workers: Record<Service, PgjobsWorker> = {
      billing: await startWorker(database(), { tasks: services.billing }),
      mail: await startWorker(database(), { tasks: services.mail }),
    };

    const before = await enqueueFromSql();
    await expectRun([...before.billing, ...before.mail]);

    for (const restarting of ["billing", "mail"] as const) {
      const other = restarting === "billing" ? "mail" : "billing";
      const exit = await workers[restarting].stop("restart");
      expect(exit.kind).toBe("stopped");

      // During: both tasks are still enqueueable; the other service runs its own at once, and
      // the restarting one's wait for it.
      const during = await enqueueFromSql();
      await expectRun(during[other]);
      await expectWaiting(during[restarting]);

      // The other service restarting meanwhile does not unregister the first one's tasks.
      await workers[other].stop("restart");
      workers[other] = await startWorker(database(), { tasks: services[other] });
      const meanwhile = await enqueueFromSql();
      await expectRun(meanwhile[other]);

      // After: the restarted service runs what waited for it, and new jobs of both.
      workers[restarting] = await startWorker(database(), { tasks: services[restarting] });
      const after = await enqueueFromSql();
      await expectRun([...during[restarting], ...meanwhile[restarting], ...after.billing, ...after.mail]);
    }

    const { rows } = await sql<{ task: string }>`
      select task from pgjobs.task_registry where task in ('billing__invoice', 'mail__send') order by task`.execute(
      database().db,
    );
    expect(rows.map((row) => row.task)).toEqual(["billing__invoice", "mail__send"]);
  });
});
