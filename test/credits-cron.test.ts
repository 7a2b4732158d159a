/**
 * The sweep's crontab line: it parses, names a registered task, and one 3-hourly tick gives one
 * sweep job however many workers run. No 3-hour wait and no dependence on the wall clock: the
 * test clock (pgjobs/testing) is set to one second before a 3-hourly tick, and workers started
 * with useNodeTime fire the crontab by it; the tick is claimed through graphile_worker's
 * known_crontabs row, once.
 */
import { parseCrontab } from "graphile-worker";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { installTestClock } from "../src/testing/index.ts";
import { APP_CRONTAB, appJobs } from "./support/app.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

const THREE_HOURS = 3 * 60 * 60 * 1000;
const IDENTIFIER = "credits_expire_holds";

function sweepLine(): string {
  const line = APP_CRONTAB.split("\n").find((text) => text.includes(`id=${IDENTIFIER}`));
  if (!line) throw new Error(`crontab has no line with ?id=${IDENTIFIER}`);
  return line;
}

describe("the credits sweep in the crontab", () => {
  it("parses with graphile-worker and names a registered, non-transactional task", () => {
    const [item, ...others] = parseCrontab(sweepLine());
    expect(others).toEqual([]);
    expect(item).toMatchObject({ task: "credits__expire_holds", identifier: IDENTIFIER });
    expect(item?.options.backfillPeriod).toBe(THREE_HOURS);
    expect(appJobs.registry.get("credits__expire_holds").options.transactional).toBe(false);
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

  it("three workers racing for one tick schedule exactly one sweep job (test clock: just before the tick)", async () => {
    const { db } = database();
    const tick = new Date("2030-01-01T03:00:00Z");
    // The schedule is known and last ran at the tick before, so nothing is owed as backfill.
    await sql`
      insert into graphile_worker._private_known_crontabs (identifier, known_since, last_execution)
      values (${IDENTIFIER}, ${new Date(+tick - 24 * THREE_HOURS)}, ${new Date(+tick - THREE_HOURS)})`.execute(db);
    // The test clock, not the wall clock, decides: the tick comes 5 s after the workers begin
    // starting, whatever time it is. (5 s, not 1: three workers starting on a loaded machine can
    // take over a second, and a tick before a worker's cron starts is owed as backfill instead.)
    const clock = installTestClock(new Date(+tick - 5000));
    try {
      const crontab = sweepLine();
      await Promise.all([1, 2, 3].map(() => startWorker(database(), { crontab, useNodeTime: true })));
      await expectOneSweep(tick);
    } finally {
      clock.uninstall();
    }
  });
});

async function expectOneSweep(tick: Date) {
  const { db } = database();
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
  expect(run.payload).toMatchObject({ _cron: { ts: tick.toISOString(), backfilled: false } });
  expect(run.result).toEqual({ expired: 0, batches: 0, timerNextAt: null });
  const known = await sql<{ last_execution: Date }>`
      select last_execution from graphile_worker._private_known_crontabs where identifier = ${IDENTIFIER}`.execute(db);
  expect(known.rows[0]?.last_execution).toEqual(tick);
}
