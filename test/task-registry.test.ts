import { parseCrontab } from "graphile-worker";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { syncTaskRegistry } from "../src/enqueue/task-registry.ts";
import { loadCrontab } from "../src/runner/worker.ts";
import { pingTask } from "../src/tasks/pgjobs/ping.ts";
import { taskNames, tasks } from "../src/tasks/index.ts";
import { useTestDatabase } from "./support/database.ts";

const database = useTestDatabase();

describe("the SQL allowlist follows the TypeScript registry", () => {
  it("holds exactly the registered tasks after migrate", async () => {
    const rows = await database().db.selectFrom("pgjobs.task_registry").select("task").orderBy("task").execute();
    expect(rows.map((row) => row.task)).toEqual(taskNames());
  });

  it("drops a task removed from the code, and SQL can no longer enqueue it", async () => {
    const { db } = database();
    const outcome = await syncTaskRegistry(db, [pingTask]);
    expect(outcome.removed.sort()).toEqual(taskNames().filter((name) => name !== "pgjobs__ping"));
    await expect(sql`select pgjobs.enqueue('pgjobs__prune_history')`.execute(db)).rejects.toThrow(
      'unknown task "pgjobs__prune_history"',
    );
    await syncTaskRegistry(db);
    await expect(sql`select pgjobs.enqueue('pgjobs__prune_history')`.execute(db)).resolves.toBeTruthy();
  });
});

describe("crontab", () => {
  it("every line parses with graphile-worker's parser, has a stable id, and names a registered task", async () => {
    const items = parseCrontab(await loadCrontab());
    expect(items.length).toBeGreaterThan(0);
    const names = new Set(tasks.map((task) => task.name));
    for (const item of items) {
      expect(names.has(item.task as never), `crontab names unregistered task ${item.task}`).toBe(true);
      // An explicit id keeps the schedule's memory (last run, backfill) across edits of the line.
      expect(item.identifier).not.toBe(item.task);
    }
  });
});
