/**
 * /metrics in Prometheus' text format, from SQL at scrape time, in a registry of its own (no
 * global default registry, no process metrics the app did not ask for).
 *
 * Counters and the duration histogram count attempts that ended since this dashboard started
 * (read once each, see history-feed.ts): they only go up, as Prometheus expects, whatever the
 * retention task deletes. Everything else is a gauge of the state now.
 */
import { sql } from "kysely";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { cronItemStatus, type CronItemView } from "../read/cron-schedule.ts";
import { HistoryFeed } from "../read/history-feed.ts";
import { cronStatus, type Db, FINAL_STATES, queueCounts } from "../read/queries.ts";

const QUEUE_STATES = ["waiting", "scheduled", "locked", "retrying", "failed"] as const;
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

export interface MetricsSource {
  db: Db;
  taskNames: readonly string[];
  cronItems: readonly CronItemView[];
}

export class DashboardMetrics {
  readonly registry = new Registry();
  private readonly feed = new HistoryFeed();
  private readonly reapedSeen = new Set<string>();
  private reapedPrimed = false;
  private refreshing: Promise<void> | undefined;
  private readonly source: MetricsSource;

  private readonly attempts: Counter<"task" | "state">;
  private readonly durations: Histogram<"task">;
  private readonly jobs: Gauge<"queue" | "task" | "state">;
  private readonly depth: Gauge<"queue">;
  private readonly oldest: Gauge<"queue">;
  private readonly cronLag: Gauge<"identifier" | "task">;
  private readonly cronLast: Gauge<"identifier" | "task">;
  private readonly heartbeat: Gauge<"worker" | "host">;
  private readonly workers: Gauge<"state">;
  private readonly reaped: Counter;

  constructor(source: MetricsSource) {
    this.source = source;
    const registers = [this.registry];
    this.attempts = new Counter({
      name: "pgjobs_attempts_total",
      help: "Job attempts that ended, by task and how they ended (counted since this dashboard started).",
      labelNames: ["task", "state"],
      registers,
    });
    this.durations = new Histogram({
      name: "pgjobs_attempt_duration_seconds",
      help: "Wall-clock duration of job attempts that ran, by task (since this dashboard started).",
      labelNames: ["task"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.jobs = new Gauge({
      name: "pgjobs_jobs",
      help: "Jobs in the queue now: waiting (due), scheduled (later), locked (held by a worker), retrying (waiting to run again), failed (out of attempts).",
      labelNames: ["queue", "task", "state"],
      registers,
    });
    this.depth = new Gauge({
      name: "pgjobs_queue_depth",
      help: 'Jobs due to run and waiting for a worker, per queue (queue="": jobs in no named queue).',
      labelNames: ["queue"],
      registers,
    });
    this.oldest = new Gauge({
      name: "pgjobs_queue_oldest_waiting_seconds",
      help: "How long the oldest due job of each queue has waited since its run_at (0 when none waits).",
      labelNames: ["queue"],
      registers,
    });
    this.cronLag = new Gauge({
      name: "pgjobs_cron_lag_seconds",
      help: "Seconds since a crontab item's latest tick while that tick has not fired (0 once it fired).",
      labelNames: ["identifier", "task"],
      registers,
    });
    this.cronLast = new Gauge({
      name: "pgjobs_cron_last_execution_timestamp_seconds",
      help: "The tick a crontab item last fired for, as a Unix time (absent until it first fires).",
      labelNames: ["identifier", "task"],
      registers,
    });
    this.heartbeat = new Gauge({
      name: "pgjobs_worker_heartbeat_age_seconds",
      help: "Seconds since each running worker last heartbeat.",
      labelNames: ["worker", "host"],
      registers,
    });
    this.workers = new Gauge({
      name: "pgjobs_workers",
      help: "Workers by state (lost: reaped after missing heartbeats; stopped and lost ones are kept 7 days).",
      labelNames: ["state"],
      registers,
    });
    this.reaped = new Counter({
      name: "pgjobs_workers_reaped_total",
      help: "Workers reaped (marked lost) since this dashboard started.",
      registers,
    });
    // Every series exists from the first scrape, so rate() and alerts see a 0, not nothing.
    for (const task of source.taskNames) {
      for (const state of FINAL_STATES) this.attempts.labels(task, state).inc(0);
      this.durations.zero({ task });
    }
  }

  /** The metrics text; concurrent scrapes share one refresh. */
  async render(): Promise<string> {
    this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined));
    await this.refreshing;
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private async refresh(): Promise<void> {
    const { db } = this.source;
    const [ended, counts, crons, workers, now] = await Promise.all([
      this.feed.next(db),
      queueCounts(db),
      cronStatus(db),
      sql<{ id: string; host: string; state: string; seconds_silent: number }>`
        select w.id, w.host, w.state, w.seconds_silent from pgjobs.worker_status w`
        .execute(db)
        .then((result) => result.rows),
      sql<{ now: Date }>`select now() as now`.execute(db).then((result) => result.rows[0]!.now),
    ]);

    for (const attempt of ended) {
      this.attempts.labels(attempt.task, attempt.state).inc();
      if (attempt.duration_ms !== null) this.durations.labels(attempt.task).observe(attempt.duration_ms / 1000);
    }

    this.jobs.reset();
    this.depth.reset();
    this.oldest.reset();
    const oldestDue = new Map<string, Date>();
    for (const row of counts) {
      const queue = row.queue ?? "";
      this.jobs.labels(queue, row.task, row.state).inc(row.jobs);
      if (row.state === "waiting") {
        this.depth.labels(queue).inc(row.jobs);
        const known = oldestDue.get(queue);
        if (row.oldest_run_at && (!known || row.oldest_run_at < known)) oldestDue.set(queue, row.oldest_run_at);
      } else {
        this.depth.labels(queue).inc(0);
      }
    }
    for (const queue of new Set(counts.map((row) => row.queue ?? ""))) {
      const since = oldestDue.get(queue);
      this.oldest.labels(queue).set(since ? Math.max(0, (now.getTime() - since.getTime()) / 1000) : 0);
    }
    // Zeros for the tasks' default queue, so a task with nothing queued still has its series.
    const present = new Set(counts.map((row) => `${row.queue ?? ""}\u0000${row.task}\u0000${row.state}`));
    for (const task of this.source.taskNames) {
      for (const state of QUEUE_STATES)
        if (!present.has(`\u0000${task}\u0000${state}`)) this.jobs.labels("", task, state).set(0);
    }

    this.cronLag.reset();
    this.cronLast.reset();
    for (const item of this.source.cronItems) {
      const status = cronItemStatus(item, crons.get(item.identifier), now);
      this.cronLag.labels(item.identifier, item.task).set(status.lagSeconds);
      if (status.lastExecution)
        this.cronLast.labels(item.identifier, item.task).set(status.lastExecution.getTime() / 1000);
    }

    this.heartbeat.reset();
    this.workers.reset();
    for (const state of ["running", "stopping", "stopped", "lost"]) this.workers.labels(state).set(0);
    for (const worker of workers) {
      this.workers.labels(worker.state).inc();
      if (worker.state === "running" || worker.state === "stopping") {
        this.heartbeat.labels(worker.id, worker.host).set(Number(worker.seconds_silent));
      }
      if (worker.state === "lost" && !this.reapedSeen.has(worker.id)) {
        this.reapedSeen.add(worker.id);
        // Workers already lost when the dashboard started were reaped before it: not counted.
        if (this.reapedPrimed) this.reaped.inc();
      }
    }
    this.reapedPrimed = true;
  }
}
