/**
 * /metrics, parsed as Prometheus parses it, against the database after a known mix of succeeded,
 * failed and waiting jobs; and /healthz.
 */
import { sql } from "kysely";
import parsePrometheusTextFormat, { type MetricFamily, type Sample } from "parse-prometheus-text-format";
import { describe, expect, it } from "vitest";
import { drainJobs } from "../../src/testing/kit.ts";
import { useTestDatabase } from "../support/database.ts";
import { addJob, dashboardTasks, registerTasks, testDashboard } from "./support.ts";

const database = useTestDatabase();

const CRONTAB = ["0 0 1 1 * dash__ok ?id=yearly_fired", "0 * * * * dash__ok ?id=hourly_missed"].join("\n");

function family(families: MetricFamily[], name: string): MetricFamily {
  const found = families.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`no metric ${name}; got ${families.map((f) => f.name).join(", ")}`);
  return found;
}

function sample(families: MetricFamily[], name: string, labels: Record<string, string>): Sample | undefined {
  return family(families, name).metrics.find((metric) =>
    Object.entries(labels).every(([key, value]) => metric.labels?.[key] === value),
  );
}

/**
 * One label set of a histogram. parse-prometheus-text-format merges a histogram's label sets into
 * one and keeps _count and _sum only when they carry no labels, so the family's lines for this
 * label are parsed alone, with the label taken off.
 */
function histogram(text: string, name: string, label: string): Sample {
  const lines = text
    .split("\n")
    .filter(
      (line) =>
        line.startsWith(`# HELP ${name} `) ||
        line.startsWith(`# TYPE ${name} `) ||
        (line.startsWith(name) && line.includes(label)),
    )
    .map((line) =>
      line
        .replace(new RegExp(`,?${label}`), "")
        .replace("{}", "")
        .replace("{,", "{"),
    );
  const [parsed] = parsePrometheusTextFormat(`${lines.join("\n")}\n`);
  if (!parsed?.metrics[0]) throw new Error(`no ${name} samples with ${label}`);
  return parsed.metrics[0];
}

function value(families: MetricFamily[], name: string, labels: Record<string, string> = {}): number {
  const found = sample(families, name, labels);
  if (!found) throw new Error(`no ${name} sample with ${JSON.stringify(labels)}`);
  return Number(found.value);
}

describe("/metrics", () => {
  it("counts attempts, durations, the queue, cron lag and workers as the database has them", async () => {
    const { db } = database();
    await registerTasks(database());
    await sql`
      insert into graphile_worker._private_known_crontabs (identifier, known_since, last_execution)
      values ('yearly_fired', now() - interval '2 years', make_timestamptz(extract(year from now())::int, 1, 1, 0, 0, 0, 'UTC')),
             ('hourly_missed', now() - interval '1 day', now() - interval '3 hours')`.execute(db);
    await sql`select pgjobs.register_worker('pool-live', 'host-a', 1, 'test', 2, array['dash__ok'])`.execute(db);
    await sql`update pgjobs.workers set last_seen_at = now() - interval '7 seconds' where id = 'pool-live'`.execute(db);
    await sql`select pgjobs.register_worker('pool-doomed', 'host-b', 2, 'test', 2, array['dash__ok'])`.execute(db);

    const app = testDashboard(database(), { crontab: CRONTAB });
    const first = await app.request("/metrics");
    expect(first.status).toBe(200);
    expect(first.headers.get("content-type")).toContain("text/plain");
    const before = parsePrometheusTextFormat(await first.text());
    // Every task's series exist from the start, at zero.
    expect(value(before, "pgjobs_attempts_total", { task: "dash__ok", state: "succeeded" })).toBe(0);
    const sinceId = await db
      .selectFrom("pgjobs.job_runs")
      .select((eb) => eb.fn.coalesce(eb.fn.max("id"), sql<string>`0`).as("id"))
      .executeTakeFirstOrThrow();

    // The mix: 5 succeed, 3 fail (one attempt each, so they stay in the queue out of attempts),
    // then 4 due jobs that wait 10 minutes already and 2 scheduled for later.
    for (let n = 0; n < 5; n++) await addJob(database(), "dash__ok", { n });
    for (let n = 0; n < 3; n++) await addJob(database(), "dash__flaky", { fail: true, note: `${n}` });
    expect(await drainJobs(database().pool, dashboardTasks)).toEqual({ succeeded: 5, failed: 3 });
    const tenMinutesAgo = new Date(Date.now() - 10 * 60_000);
    for (let n = 0; n < 4; n++) await addJob(database(), "dash__ok", { n }, { runAt: tenMinutesAgo });
    for (let n = 0; n < 2; n++) await addJob(database(), "dash__ok", { n }, { runAt: new Date(Date.now() + 3600_000) });
    await sql`update pgjobs.workers set state = 'lost', stopped_at = now() where id = 'pool-doomed'`.execute(db);

    const text = await (await app.request("/metrics")).text();
    const oldestAfter = await sql<{ age: number }>`
      select extract(epoch from now() - min(run_at))::float8 as age from graphile_worker.jobs
       where run_at <= now() and attempts < max_attempts and locked_by is null`.execute(db);
    const metrics = parsePrometheusTextFormat(text);

    const history = await db
      .selectFrom("pgjobs.job_runs")
      .select([
        "task",
        "state",
        (eb) => eb.fn.countAll<string>().as("n"),
        (eb) => eb.fn.sum<string>("duration_ms").as("ms"),
      ])
      .where("id", ">", String(sinceId.id))
      .groupBy(["task", "state"])
      .execute();
    expect(history.map((row) => [row.task, row.state, Number(row.n)]).sort()).toEqual([
      ["dash__flaky", "failed", 3],
      ["dash__ok", "succeeded", 5],
    ]);
    for (const row of history) {
      expect(value(metrics, "pgjobs_attempts_total", { task: row.task, state: row.state })).toBe(Number(row.n));
    }
    expect(value(metrics, "pgjobs_attempts_total", { task: "dash__ok", state: "failed" })).toBe(0);

    const durations = histogram(text, "pgjobs_attempt_duration_seconds", 'task="dash__ok"');
    expect(Number(durations.count)).toBe(5);
    const okMs = Number(history.find((row) => row.task === "dash__ok")!.ms);
    expect(Number(durations.sum)).toBeCloseTo(okMs / 1000, 6);
    expect(Number(durations.buckets!["+Inf"])).toBe(5);

    expect(value(metrics, "pgjobs_jobs", { queue: "", task: "dash__ok", state: "waiting" })).toBe(4);
    expect(value(metrics, "pgjobs_jobs", { queue: "", task: "dash__ok", state: "scheduled" })).toBe(2);
    expect(value(metrics, "pgjobs_jobs", { queue: "", task: "dash__flaky", state: "failed" })).toBe(3);
    expect(value(metrics, "pgjobs_queue_depth", { queue: "" })).toBe(4);
    const oldest = value(metrics, "pgjobs_queue_oldest_waiting_seconds", { queue: "" });
    expect(oldest).toBeGreaterThanOrEqual(600);
    expect(oldest).toBeLessThanOrEqual(oldestAfter.rows[0]!.age);

    expect(value(metrics, "pgjobs_cron_lag_seconds", { identifier: "yearly_fired" })).toBe(0);
    expect(value(metrics, "pgjobs_cron_lag_seconds", { identifier: "hourly_missed" })).toBeGreaterThan(0);
    expect(value(metrics, "pgjobs_cron_lag_seconds", { identifier: "hourly_missed" })).toBeLessThanOrEqual(3600);
    const yearStart = Date.UTC(new Date().getUTCFullYear(), 0, 1) / 1000;
    expect(value(metrics, "pgjobs_cron_last_execution_timestamp_seconds", { identifier: "yearly_fired" })).toBe(
      yearStart,
    );

    expect(value(metrics, "pgjobs_worker_heartbeat_age_seconds", { worker: "pool-live" })).toBeGreaterThanOrEqual(7);
    expect(sample(metrics, "pgjobs_worker_heartbeat_age_seconds", { worker: "pool-doomed" })).toBeUndefined();
    expect(value(metrics, "pgjobs_workers", { state: "running" })).toBe(1);
    expect(value(metrics, "pgjobs_workers", { state: "lost" })).toBe(1);
    expect(value(metrics, "pgjobs_workers_reaped_total")).toBe(1);

    // Pruning history does not make a counter fall.
    await db.deleteFrom("pgjobs.job_runs").execute();
    const afterPrune = parsePrometheusTextFormat(await (await app.request("/metrics")).text());
    expect(value(afterPrune, "pgjobs_attempts_total", { task: "dash__ok", state: "succeeded" })).toBe(5);
  });
});

describe("/healthz", () => {
  it("fails without a fresh heartbeat and passes with one, saying which check failed", async () => {
    const { db } = database();
    await sql`delete from pgjobs.workers`.execute(db);
    const app = testDashboard(database(), { livenessTimeoutMs: 30_000 });
    const sick = await app.request("/healthz");
    expect(sick.status).toBe(503);
    expect(await sick.json()).toMatchObject({
      ok: false,
      database: { ok: true },
      migrations: { ok: true, pending: [] },
      heartbeat: { ok: false, newestSecondsAgo: null },
    });
    await sql`select pgjobs.register_worker('pool-fresh', 'host', 1, 'test', 1, array['dash__ok'])`.execute(db);
    const healthy = await app.request("/healthz");
    expect(healthy.status).toBe(200);
    expect(await healthy.json()).toMatchObject({ ok: true, heartbeat: { ok: true } });
    await sql`update pgjobs.workers set last_seen_at = now() - interval '31 seconds'`.execute(db);
    expect((await app.request("/healthz")).status).toBe(503);
  });
});
