/**
 * The sweep's crontab line: it parses, names a registered task, and one 3-hourly tick gives one
 * sweep job however many workers run. No 3-hour wait: graphile-worker's own backfill mechanics
 * (as in its __tests__/cron.test.ts) make workers that start after a missed tick schedule it at
 * once, and the tick is claimed through graphile_worker's known_crontabs row.
 */
import { parseCrontab } from "graphile-worker";
import { sql } from "kysely";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { loadCrontab } from "../src/runner/worker.ts";
import { findTask } from "../src/tasks/index.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

const THREE_HOURS = 3 * 60 * 60 * 1000;
const IDENTIFIER = "credits_expire_holds";

async function sweepLine(): Promise<string> {
  const line = (await loadCrontab()).split("\n").find((text) => text.includes(`id=${IDENTIFIER}`));
  if (!line) throw new Error(`crontab has no line with ?id=${IDENTIFIER}`);
  return line;
}

describe("the credits sweep in the crontab", () => {
  it("parses with graphile-worker and names a registered, non-transactional task", async () => {
    const [item, ...others] = parseCrontab(await sweepLine());
    expect(others).toEqual([]);
    expect(item).toMatchObject({ task: "credits__expire_holds", identifier: IDENTIFIER });
    expect(item?.options.backfillPeriod).toBe(THREE_HOURS);
    expect(findTask("credits__expire_holds")?.options.transactional).toBe(false);
    // Every 3 hours on the hour (UTC), and at no other minute of those hours.
    const at = (iso: string) => {
      const date = new Date(iso);
      return item?.match({
        min: date.getUTCMinutes(),
        hour: date.getUTCHours(),
        date: date.getUTCDate(),
        month: date.getUTCMonth() + 1,
        dow: date.getUTCDay(),
      });
    };
    expect([at("2030-01-01T00:00:00Z"), at("2030-01-01T03:00:00Z"), at("2030-01-01T21:00:00Z")]).toEqual([
      true,
      true,
      true,
    ]);
    expect([at("2030-01-01T01:00:00Z"), at("2030-01-01T03:01:00Z")]).toEqual([false, false]);
  });

  it("three workers racing for one tick schedule exactly one sweep job", async () => {
    const { db, url } = database();
    // A tick boundary crossed mid-test would be a second, real tick: start clear of the next one.
    const untilNextTick = THREE_HOURS - (Date.now() % THREE_HOURS);
    if (untilNextTick < 60_000) await new Promise((resolve) => setTimeout(resolve, untilNextTick + 1000));
    const tick = new Date(Date.now() - (Date.now() % THREE_HOURS));

    // The schedule is known and last ran at the tick before: workers starting now find `tick` missed.
    await sql`
      insert into graphile_worker._private_known_crontabs (identifier, known_since, last_execution)
      values (${IDENTIFIER}, ${new Date(+tick - 24 * THREE_HOURS)}, ${new Date(+tick - THREE_HOURS)})`.execute(db);

    // Hold the schedule's row so all three workers reach the claim and wait on it together.
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    try {
      await blocker.query("begin");
      await blocker.query("select 1 from graphile_worker._private_known_crontabs where identifier = $1 for update", [
        IDENTIFIER,
      ]);
      const crontab = await sweepLine();
      await Promise.all([1, 2, 3].map(() => startWorker(database(), { crontab })));
      await waitFor("three workers to race for the tick", async () => {
        const { rows } = await sql<{ waiting: string }>`
          select count(*) as waiting from pg_stat_activity
           where datname = current_database() and wait_event_type = 'Lock'
             and query like '%_private_known_crontabs%'`.execute(db);
        return Number(rows[0]?.waiting) === 3 ? true : undefined;
      });
      await blocker.query("commit");
    } finally {
      await blocker.end();
    }

    const run = await waitFor("the sweep job to succeed", async () =>
      db
        .selectFrom("pgjobs.job_runs")
        .select(["job_id", "payload", "result"])
        .where("task", "=", "credits__expire_holds")
        .where("state", "=", "succeeded")
        .executeTakeFirst(),
    );
    await waitFor("the other workers to finish their claims", async () => {
      const { rows } = await sql<{ waiting: string }>`
        select count(*) as waiting from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()
           and query like '%_private_known_crontabs%' and state = 'active'`.execute(db);
      return Number(rows[0]?.waiting) === 0 ? true : undefined;
    });

    const sweeps = await db
      .selectFrom("pgjobs.job_status")
      .select(["job_id", "state"])
      .where("task", "=", "credits__expire_holds")
      .execute();
    expect(sweeps).toEqual([{ job_id: run.job_id, state: "succeeded" }]);
    expect(run.payload).toMatchObject({ _cron: { ts: tick.toISOString(), backfilled: true } });
    expect(run.result).toEqual({ expired: 0, batches: 0, timerNextAt: null });
    const known = await sql<{ last_execution: Date }>`
      select last_execution from graphile_worker._private_known_crontabs where identifier = ${IDENTIFIER}`.execute(db);
    expect(known.rows[0]?.last_execution).toEqual(tick);
  });
});
