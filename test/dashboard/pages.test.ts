/**
 * The pages' data: one row per job across the queue and the history, keyset pages that neither
 * skip nor repeat, filters, bulk actions on a filtered set, cron items run now.
 */
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { listJobs, taskSummary, throughput } from "../../src/read/queries.ts";
import { createDb, createPool } from "../../src/db/connection.ts";
import { drainJobs } from "../../src/testing/kit.ts";
import { useTestDatabase } from "../support/database.ts";
import {
  addJob,
  auditRows,
  BASIC,
  dashboardTasks,
  liveRow,
  registerTasks,
  SIGNED_IN,
  testDashboard,
} from "./support.ts";

const database = useTestDatabase();

/** The job ids a page of /jobs links to, in order. */
function jobIds(html: string): string[] {
  return [...html.matchAll(/<td><a href="\/jobs\/(\d+)">/g)].map((match) => match[1]!);
}

describe("the jobs list", () => {
  it("shows every job once, newest first, across the queue and the history, in pages that never skip or repeat", async () => {
    const { db, pool } = database();
    await registerTasks(database());
    const finished: string[] = [];
    for (let n = 0; n < 60; n++) finished.push(await addJob(database(), "dash__ok", { n }));
    const failed = await addJob(database(), "dash__flaky", { fail: true });
    // A job that failed, was retried from the dashboard and then succeeded: two attempts, one row.
    const retried = await addJob(database(), "dash__flaky", { fail: true });
    await drainJobs(pool, dashboardTasks);
    const app = testDashboard(database());
    await app.request(`/jobs/${retried}/retry`, {
      method: "POST",
      body: new URLSearchParams({ payload: '{"fail": false}' }),
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: BASIC },
    });
    await drainJobs(pool, dashboardTasks);
    const waiting: string[] = [];
    for (let n = 0; n < 45; n++) waiting.push(await addJob(database(), "dash__ok", { n }, { queue: "reports" }));
    const all = [...finished, failed, retried, ...waiting].sort((a, b) => Number(b) - Number(a));

    const seen: string[] = [];
    let url: string | undefined = "/jobs";
    while (url) {
      const response = await app.request(url, SIGNED_IN);
      expect(response.status).toBe(200);
      const html = await response.text();
      seen.push(...jobIds(html));
      url = /<a rel="next" href="([^"]+)"/.exec(html)?.[1]?.replace(/&amp;/g, "&");
    }
    expect(seen).toEqual(all);

    const rows = await listJobs(db, {}, 1000);
    expect(rows.find((row) => row.job_id === retried)).toMatchObject({
      state: "succeeded",
      in_queue: false,
      attempts: 2,
    });
    expect(rows.find((row) => row.job_id === failed)).toMatchObject({ state: "failed", in_queue: true, attempts: 1 });
    expect(rows.find((row) => row.job_id === waiting[0])).toMatchObject({ state: "queued", queue: "reports" });
  });

  it("filters by state, task, queue and time, and refuses what it does not know", async () => {
    const { db } = database();
    const ids = (rows: Array<{ job_id: string }>) => rows.map((row) => row.job_id);
    const failed = await listJobs(db, { state: "failed" });
    expect(failed.length).toBe(1);
    expect(failed.every((row) => row.task === "dash__flaky" && row.in_queue)).toBe(true);
    const queued = await listJobs(db, { state: "queued", queue: "reports" });
    expect(queued.length).toBe(45);
    expect(await listJobs(db, { state: "queued", queue: "nowhere" })).toEqual([]);
    const succeededFlaky = await listJobs(db, { state: "succeeded", task: "dash__flaky" });
    expect(succeededFlaky.length).toBe(1);
    const future = new Date(Date.now() + 3600_000);
    expect(await listJobs(db, { state: "finished", from: future })).toEqual([]);
    const { rows } = await sql<{ since: Date }>`select min(finished_at) as since from pgjobs.job_runs`.execute(db);
    const window = await listJobs(db, { state: "finished", from: rows[0]!.since, to: future }, 1000);
    expect(ids(window).length).toBe(61);

    const app = testDashboard(database());
    expect((await app.request("/jobs?state=exploded", SIGNED_IN)).status).toBe(400);
    expect((await app.request("/jobs?from=yesterday", SIGNED_IN)).status).toBe(400);
    expect((await app.request("/jobs?before=1%20or%201=1", SIGNED_IN)).status).toBe(400);
    const page = await (await app.request("/jobs?state=failed&task=dash__flaky", SIGNED_IN)).text();
    expect(jobIds(page)).toEqual(ids(failed));
  });
});

describe("bulk actions", () => {
  it("cancel every job a filter matches, recording the filter and each outcome", async () => {
    const { db } = database();
    const app = testDashboard(database());
    const refused = await app.request("/jobs/bulk", {
      method: "POST",
      body: new URLSearchParams({ action: "cancel" }),
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: BASIC },
    });
    expect(refused.status).toBe(400); // no state chosen: "everything" is not a bulk target
    const targets = await listJobs(db, { state: "queued", queue: "reports" }, 1000);
    const done = await app.request("/jobs/bulk", {
      method: "POST",
      body: new URLSearchParams({ action: "cancel", state: "queued", queue: "reports" }),
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: BASIC },
    });
    expect(done.status).toBe(303);
    expect(await listJobs(db, { state: "queued", queue: "reports" })).toEqual([]);
    const cancelled = await db
      .selectFrom("pgjobs.job_runs")
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .where("state", "=", "cancelled")
      .where("queue", "=", "reports")
      .executeTakeFirstOrThrow();
    expect(Number(cancelled.n)).toBe(45);
    const [audit] = await auditRows(database(), targets[0]!.job_id);
    expect(audit).toMatchObject({
      actor: "alice",
      action: "bulk_cancel",
      detail: { filter: { state: "queued", queue: "reports" } },
    });
    expect(audit!.job_ids.length).toBe(45);
    expect(Object.values(audit!.outcome as Record<string, string>).every((outcome) => outcome === "cancelled")).toBe(
      true,
    );
  });

  it("retry every failed job a filter matches", async () => {
    const { db } = database();
    const [failed] = await listJobs(db, { state: "failed" });
    const app = testDashboard(database());
    const done = await app.request("/jobs/bulk", {
      method: "POST",
      body: new URLSearchParams({ action: "retry", state: "failed" }),
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: BASIC },
    });
    expect(done.status).toBe(303);
    expect(await liveRow(database(), failed!.job_id)).toMatchObject({ attempts: 1, max_attempts: 2 });
    const [audit] = await auditRows(database(), failed!.job_id);
    expect(audit).toMatchObject({ action: "bulk_retry", outcome: { [failed!.job_id]: "rescheduled" } });
  });
});

describe("cron", () => {
  const crontab = '30 2 * * * dash__ok ?id=nightly_ok&max=3 {"n":42}';

  it("shows each item's schedule in words, in UTC, with its next run", async () => {
    const app = testDashboard(database(), { crontab });
    const html = await (await app.request("/cron", SIGNED_IN)).text();
    expect(html).toContain("nightly_ok");
    expect(html).toContain("At 02:30, every day (UTC)"); // cronstrue, 24-hour clock
    expect(html).toContain("(UTC)");
    const next = new Date();
    next.setUTCHours(2, 30, 0, 0);
    if (next.getTime() <= Date.now()) next.setUTCDate(next.getUTCDate() + 1);
    expect(html).toContain(`${next.toISOString().slice(0, 10)} 02:30:00 UTC`);
    expect(html).toContain("no worker has loaded this item yet");
  });

  it("runs an item now with its payload and options, recorded with who asked", async () => {
    const app = testDashboard(database(), { crontab });
    const done = await app.request("/cron/nightly_ok/run", { method: "POST", headers: { authorization: BASIC } });
    expect(done.status).toBe(303);
    const jobId = done.headers.get("location")!.split("/").pop()!;
    const job = await liveRow(database(), jobId);
    expect(job).toMatchObject({ max_attempts: 3, payload: { n: 42, _cron: { manual: true } } });
    const [audit] = await auditRows(database(), jobId);
    expect(audit).toMatchObject({ actor: "alice", action: "run_now", detail: { cron: "nightly_ok" } });
    expect((await app.request("/cron/nope/run", { method: "POST", headers: { authorization: BASIC } })).status).toBe(
      404,
    );
  });
});

describe("tasks", () => {
  it("counts attempts by how they ended, and reads p50/p95 within 3% of the exact values, rolled up or not", async () => {
    const { db } = database();
    // 2,000 attempts over the last 30 hours, durations over three orders of magnitude.
    await sql`
      insert into pgjobs.job_runs (job_id, task, attempt, max_attempts, state, started_at, finished_at)
      select 900000 + n, 'dash__ok', 1, 1, case when n % 10 = 0 then 'failed' else 'succeeded' end,
             f.at - make_interval(secs => power(1.01, n % 700) / 1000.0), f.at
        from generate_series(1, 2000) n
        cross join lateral (select now() - make_interval(hours => n % 30, secs => 1) as at) f`.execute(db);
    for (const pass of ["first", "second"]) {
      const { since, rows } = await taskSummary(db, 24);
      const summary = rows.find((row) => row.task === "dash__ok");
      const { rows: exact } = await sql<{
        attempts: string;
        succeeded: string;
        failed: string;
        p50: number;
        p95: number;
      }>`
        select count(*) filter (where started_at is not null) as attempts,
               count(*) filter (where state = 'succeeded') as succeeded,
               count(*) filter (where state = 'failed') as failed,
               percentile_disc(0.5) within group (order by duration_ms) as p50,
               percentile_disc(0.95) within group (order by duration_ms) as p95
          from pgjobs.job_runs where task = 'dash__ok' and finished_at >= ${since}`.execute(db);
      expect(summary, pass).toMatchObject({
        attempts: Number(exact[0]!.attempts),
        succeeded: Number(exact[0]!.succeeded),
        failed: Number(exact[0]!.failed),
      });
      expect(Math.abs(summary!.p50_ms! / exact[0]!.p50 - 1), pass).toBeLessThan(0.03);
      expect(Math.abs(summary!.p95_ms! / exact[0]!.p95 - 1), pass).toBeLessThan(0.03);

      const points = await throughput(db, 24);
      const { rows: chart } = await sql<{ succeeded: string; failed: string }>`
        select count(*) filter (where state = 'succeeded') as succeeded,
               count(*) filter (where state in ('failed', 'rejected', 'timed_out', 'abandoned')) as failed
          from pgjobs.job_runs where finished_at >= ${points[0]!.minute}`.execute(db);
      expect(
        points.reduce((sum, point) => sum + point.succeeded, 0),
        pass,
      ).toBe(Number(chart[0]!.succeeded));
      expect(
        points.reduce((sum, point) => sum + point.failed, 0),
        pass,
      ).toBe(Number(chart[0]!.failed));
    }
    // The closed hours did come from the rollup.
    const { rows: rolled } = await sql<{ n: string }>`
      select sum(attempts) as n from pgjobs.dashboard_hours where task = 'dash__ok'`.execute(db);
    expect(Number(rolled[0]!.n)).toBeGreaterThan(1500);
  });

  it("answers on a read-only connection (a replica) from what the primary rolled up and job_runs", async () => {
    // History in closed hours that no one rolled up yet: the replica cannot roll it up and must
    // read job_runs; the primary rolls it up.
    await sql`
      insert into pgjobs.job_runs (job_id, task, attempt, max_attempts, state, started_at, finished_at)
      values (990001, 'dash__ok', 1, 1, 'succeeded', now() - interval '3 hours 1 second', now() - interval '3 hours')`.execute(
      database().db,
    );
    await sql`truncate pgjobs.dashboard_rollup, pgjobs.dashboard_minutes, pgjobs.dashboard_hours, pgjobs.dashboard_durations`.execute(
      database().db,
    );
    const pool = createPool(`${database().url}?options=${encodeURIComponent("-c default_transaction_read_only=on")}`);
    try {
      const replica = createDb(pool);
      const { since, rows } = await taskSummary(replica, 24);
      const onPrimary = await taskSummary(database().db, 24);
      expect(since).toEqual(onPrimary.since);
      expect(rows).toEqual(onPrimary.rows);
    } finally {
      await pool.end();
    }
  });

  it("lists every task, with zeros for those with nothing in the window", async () => {
    const app = testDashboard(database());
    const html = await (await app.request("/tasks?hours=1", SIGNED_IN)).text();
    for (const task of dashboardTasks) expect(html).toContain(task.name);
    expect(html).toMatch(/dash__hold<\/a><\/td>\s*<td class="num">0<\/td>/);
  });
});
