/**
 * The SQL allowlist (pgjobs.task_registry): each service registers its own tasks and never
 * removes another's, so services sharing a database (or a canary beside the fleet) do not make
 * SQL enqueue flap; a name nobody has registered for 30 days and no running worker runs expires.
 */
import { parseCrontab } from "graphile-worker";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { syncTaskRegistry } from "../src/enqueue/sql-allowlist.ts";
import { defineTask, pingTask } from "../src/index.ts";
import { APP_CRONTAB, appJobs, appTasks } from "./support/app.ts";
import { useTestDatabase } from "./support/database.ts";

const database = useTestDatabase();
const otherServiceTask = defineTask({
  name: "billing__invoice",
  payload: z.object({}),
  run: () => Promise.resolve(null),
});

describe("the SQL allowlist", () => {
  it("holds the app's tasks after migrate", async () => {
    const rows = await database().db.selectFrom("pgjobs.task_registry").select("task").orderBy("task").execute();
    expect(rows.map((row) => row.task)).toEqual(appJobs.registry.names());
  });

  it("another service registering its own tasks removes none of ours", async () => {
    const { db } = database();
    await syncTaskRegistry(db, [otherServiceTask, pingTask]);
    await expect(sql`select pgjobs.enqueue('pgjobs__prune_history')`.execute(db)).resolves.toBeTruthy();
    await expect(sql`select pgjobs.enqueue('billing__invoice')`.execute(db)).resolves.toBeTruthy();
  });

  it("a name registered by no one for 30 days, and run by no running worker, expires at a heartbeat", async () => {
    const { db } = database();
    await syncTaskRegistry(db, [otherServiceTask]);
    await sql`update pgjobs.task_registry set updated_at = now() - interval '31 days'
               where task in ('billing__invoice', 'pgjobs__ping')`.execute(db);
    // A running worker still lists pgjobs__ping: it stays. billing__invoice goes.
    await sql`select pgjobs.register_worker('pool-beat', 'test', 0, 'test', 1, array['pgjobs__ping'])`.execute(db);
    await sql`select * from pgjobs.heartbeat('pool-beat', interval '30 seconds')`.execute(db);
    const names = (await db.selectFrom("pgjobs.task_registry").select("task").execute()).map((row) => row.task);
    expect(names).toContain("pgjobs__ping");
    expect(names).not.toContain("billing__invoice");
    await expect(sql`select pgjobs.enqueue('billing__invoice')`.execute(db)).rejects.toThrow(
      'unknown task "billing__invoice"',
    );
  });
});

describe("crontab", () => {
  it("every line parses with graphile-worker's parser, has a stable id, and names a task of the app", () => {
    const items = parseCrontab(APP_CRONTAB);
    expect(items.length).toBeGreaterThan(0);
    const names = new Set(appTasks.map((task) => task.name));
    for (const item of items) {
      expect(names.has(item.task as never), `crontab names unregistered task ${item.task}`).toBe(true);
      // An explicit id keeps the schedule's memory (last run, backfill) across edits of the line.
      expect(item.identifier).not.toBe(item.task);
    }
  });
});
