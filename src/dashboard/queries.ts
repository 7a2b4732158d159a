/**
 * What the dashboard reads. Graphile-worker's private tables only through the SQL functions of
 * migrations/0007_dashboard.sql; pgjobs' own tables and views directly. Every filter is a bound
 * parameter, and every list is paged by keyset (a job id), never by OFFSET.
 */
import { type Kysely, sql } from "kysely";
import type { Database, JobRunState } from "../db/schema.ts";

export type Db = Kysely<Database>;

/** States a job can be listed by: where it is now, or how its last attempt ended. */
export const LIVE_STATES = ["queued", "scheduled", "running", "retrying"] as const;
export const FINAL_STATES = [
  "succeeded",
  "failed",
  "rejected",
  "timed_out",
  "abandoned",
  "cancelled",
  "marked_complete",
  "marked_failed",
] as const satisfies readonly JobRunState[];
export const JOB_STATE_FILTERS = ["in_queue", "finished", ...LIVE_STATES, ...FINAL_STATES] as const;
export type JobStateFilter = (typeof JOB_STATE_FILTERS)[number];
/** Attempt states that count as a failure (charts, recent failures, metrics). */
export const FAILURE_STATES = ["failed", "rejected", "timed_out", "abandoned"] as const;

export const PAGE_SIZE = 50;

export interface JobFilter {
  state?: JobStateFilter;
  task?: string;
  queue?: string;
  from?: Date;
  to?: Date;
  /** Keyset: only jobs with a smaller id (older). */
  before?: string;
}

export interface JobRow {
  job_id: string;
  task: string;
  queue: string | null;
  state: string;
  in_queue: boolean;
  attempts: number;
  max_attempts: number;
  run_at: Date | null;
  created_at: Date | null;
  finished_at: Date | null;
  error_message: string | null;
}

export async function listJobs(db: Db, filter: JobFilter, limit = PAGE_SIZE): Promise<JobRow[]> {
  const { rows } = await sql<JobRow>`
    select * from pgjobs.dashboard_jobs(${filter.state ?? null}, ${filter.task ?? null}, ${filter.queue ?? null},
      ${filter.from ?? null}::timestamptz, ${filter.to ?? null}::timestamptz, ${filter.before ?? null}::bigint,
      ${limit}::int)`.execute(db);
  return rows;
}

export interface LiveJob {
  job_id: string;
  task: string;
  queue: string | null;
  state: string;
  payload: unknown;
  priority: number;
  run_at: Date;
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  key: string | null;
  locked_by: string | null;
  locked_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface Attempt {
  task: string;
  attempt: number;
  state: string;
  will_retry: boolean;
  payload: unknown;
  payload_truncated: boolean;
  result: unknown;
  error_message: string | null;
  error_stack: string | null;
  note: string | null;
  worker_id: string | null;
  started_at: Date | null;
  finished_at: Date | null;
  duration_ms: number | null;
}

export interface JobDetail {
  jobId: string;
  /** Null once the job has left the queue. */
  live: LiveJob | undefined;
  /** Every attempt, oldest first (a running one included). */
  attempts: Attempt[];
  task: string;
  state: string;
}

export async function getJob(db: Db, jobId: string): Promise<JobDetail | undefined> {
  const [live, attempts] = await Promise.all([
    sql<LiveJob>`select * from pgjobs.dashboard_job(${jobId}::bigint)`.execute(db).then((result) => result.rows[0]),
    db
      .selectFrom("pgjobs.runs")
      .select([
        "task",
        "attempt",
        "state",
        "will_retry",
        "payload",
        "payload_truncated",
        "result",
        "error_message",
        "error_stack",
        "note",
        "worker_id",
        "started_at",
        "finished_at",
        "duration_ms",
      ])
      .where("job_id", "=", jobId)
      .orderBy("attempt")
      .execute(),
  ]);
  const last = attempts.at(-1);
  if (live) return { jobId, live, attempts, task: live.task, state: live.state };
  if (last) return { jobId, live: undefined, attempts, task: last.task, state: last.state };
  return undefined;
}

export interface QueueCount {
  queue: string | null;
  task: string;
  /** waiting (due), scheduled, locked (held by a worker), retrying, failed (no attempts left) */
  state: "waiting" | "scheduled" | "locked" | "retrying" | "failed";
  jobs: number;
  oldest_run_at: Date | null;
}

export async function queueCounts(db: Db): Promise<QueueCount[]> {
  const { rows } = await sql<QueueCount & { jobs: string }>`select * from pgjobs.queue_counts()`.execute(db);
  return rows.map((row) => ({ ...row, jobs: Number(row.jobs) }));
}

export interface ThroughputPoint {
  minute: Date;
  succeeded: number;
  failed: number;
}

/**
 * Attempts ended per minute over the window, every minute present (quiet ones as zeros, so the
 * chart spans the whole window). The BRIN index on finished_at reads only the window's blocks.
 */
export async function throughput(db: Db, hours: number): Promise<ThroughputPoint[]> {
  const { rows } = await sql<{ minute: Date; succeeded: string; failed: string }>`
    with ended as (
      -- the expression of the statistics pgjobs.job_runs_finished_minute, for the planner's estimate
      select date_trunc('minute', r.finished_at, 'UTC') as minute,
             count(*) filter (where r.state = 'succeeded') as succeeded,
             count(*) filter (where r.state in ('failed', 'rejected', 'timed_out', 'abandoned')) as failed
        from pgjobs.job_runs r
       where r.finished_at >= date_trunc('minute', now() - make_interval(hours => ${hours}::int))
       group by 1
    )
    select m.minute, coalesce(e.succeeded, 0) as succeeded, coalesce(e.failed, 0) as failed
      from generate_series(date_trunc('minute', now() - make_interval(hours => ${hours}::int)),
                           date_trunc('minute', now()), interval '1 minute') as m(minute)
      left join ended e on e.minute = m.minute
     order by m.minute`.execute(db);
  return rows.map((row) => ({ minute: row.minute, succeeded: Number(row.succeeded), failed: Number(row.failed) }));
}

export interface FailureRow {
  job_id: string;
  task: string;
  attempt: number;
  state: string;
  will_retry: boolean;
  error_message: string | null;
  finished_at: Date | null;
}

/** The latest failed attempts (the partial index of non-successes makes this a short walk). */
export async function recentFailures(db: Db, limit = 10): Promise<FailureRow[]> {
  return db
    .selectFrom("pgjobs.job_runs")
    .select(["job_id", "task", "attempt", "state", "will_retry", "error_message", "finished_at"])
    .where("state", "in", FAILURE_STATES)
    .orderBy("id", "desc")
    .limit(limit)
    .execute();
}

export interface TaskSummaryRow {
  task: string;
  attempts: number;
  succeeded: number;
  failed: number;
  rejected: number;
  timed_out: number;
  abandoned: number;
  cancelled: number;
  running: number;
  success_rate: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
}

/** Duration buckets per factor e (width e^(1/20), about 5%): a percentile read from them is within 2.5%. */
const BUCKETS_PER_E = 20;

/**
 * pgjobs.task_summary's numbers, with the window on finished_at (which its BRIN index serves)
 * instead of coalesce(finished_at, started_at), the running attempts added, and p50/p95 read from
 * a histogram of durations: one hash aggregation, where exact percentiles sort every row of the
 * window (a day of a busy system: 0.84 s instead of 0.26 s, bench/dashboard.ts).
 */
export async function taskSummary(db: Db, hours: number): Promise<TaskSummaryRow[]> {
  const { rows } = await sql<{ task: string; state: string; started: boolean; bucket: number | null; n: string }>`
    with attempts as (
      select r.task, r.state, r.started_at is not null as started, r.duration_ms
        from pgjobs.job_runs r
       where r.finished_at >= now() - make_interval(hours => ${hours}::int)
      union all
      select a.task, 'running', true, null from pgjobs.running_attempts a
    )
    select a.task, a.state, a.started,
           -- (greatest() skips nulls: attempts with no duration must stay out of the histogram)
           case when a.duration_ms is not null
                then floor(ln(greatest(a.duration_ms, 0.001)) * ${BUCKETS_PER_E}::int)::int end as bucket,
           count(*) as n
      from attempts a
     group by 1, 2, 3, 4`.execute(db);
  const tasks = new Map<string, { row: TaskSummaryRow; buckets: Map<number, number> }>();
  for (const part of rows) {
    let entry = tasks.get(part.task);
    if (!entry) {
      entry = { row: emptySummary(part.task), buckets: new Map() };
      tasks.set(part.task, entry);
    }
    const n = Number(part.n);
    const { row } = entry;
    if (part.started) row.attempts += n;
    switch (part.state) {
      case "succeeded":
      case "failed":
      case "rejected":
      case "timed_out":
      case "abandoned":
      case "running":
        row[part.state] += n;
        break;
      default: // cancelled, marked_complete, marked_failed: left without running
        row.cancelled += n;
    }
    if (part.bucket !== null) entry.buckets.set(part.bucket, (entry.buckets.get(part.bucket) ?? 0) + n);
  }
  return [...tasks.values()]
    .map(({ row, buckets }) => {
      const ended = row.attempts - row.running;
      row.success_rate = ended > 0 ? row.succeeded / ended : null;
      row.p50_ms = percentile(buckets, 0.5);
      row.p95_ms = percentile(buckets, 0.95);
      return row;
    })
    .sort((a, b) => a.task.localeCompare(b.task));
}

export function emptySummary(task: string): TaskSummaryRow {
  return {
    task,
    attempts: 0,
    succeeded: 0,
    failed: 0,
    rejected: 0,
    timed_out: 0,
    abandoned: 0,
    cancelled: 0,
    running: 0,
    success_rate: null,
    p50_ms: null,
    p95_ms: null,
  };
}

/** The q-quantile of a log-bucketed histogram: the geometric middle of the bucket it falls in. */
function percentile(buckets: Map<number, number>, q: number): number | null {
  const total = [...buckets.values()].reduce((sum, n) => sum + n, 0);
  if (total === 0) return null;
  let seen = 0;
  for (const bucket of [...buckets.keys()].sort((a, b) => a - b)) {
    seen += buckets.get(bucket)!;
    if (seen >= q * total) return Math.exp((bucket + 0.5) / BUCKETS_PER_E);
  }
  return null;
}

export interface WorkerRow {
  id: string;
  host: string;
  pid: number;
  version: string;
  state: string;
  concurrency: number;
  started_at: Date;
  last_seen_at: Date;
  seconds_silent: number;
  stopped_at: Date | null;
  stop_reason: string | null;
  running: Array<{ job_id: string; task: string; started_at: Date }>;
}

/** Workers, newest first: live ones with what each runs and since when. */
export async function listWorkers(db: Db): Promise<WorkerRow[]> {
  const [workers, running] = await Promise.all([
    db
      .selectFrom("pgjobs.worker_status")
      .select([
        "id",
        "host",
        "pid",
        "version",
        "state",
        "concurrency",
        "started_at",
        "last_seen_at",
        "seconds_silent",
        "stopped_at",
        "stop_reason",
      ])
      .orderBy(sql`state in ('running', 'stopping')`, "desc")
      .orderBy("started_at", "desc")
      .execute(),
    sql<{ worker_id: string; job_id: string; task: string; started_at: Date }>`
      select a.worker_id, a.job_id, a.task, a.started_at from pgjobs.running_attempts a order by a.started_at`
      .execute(db)
      .then((result) => result.rows),
  ]);
  return workers.map((worker) => ({
    ...worker,
    seconds_silent: Number(worker.seconds_silent),
    running: running.filter((row) => row.worker_id === worker.id),
  }));
}

export interface CronStatusRow {
  identifier: string;
  known_since: Date;
  last_execution: Date | null;
}

export async function cronStatus(db: Db): Promise<Map<string, CronStatusRow>> {
  const { rows } = await sql<CronStatusRow>`select * from pgjobs.cron_status()`.execute(db);
  return new Map(rows.map((row) => [row.identifier, row]));
}

/** Task names for the filters: the registry's (tasks with no history yet included). */
export async function registeredTaskNames(db: Db): Promise<string[]> {
  const rows = await db.selectFrom("pgjobs.task_registry").select("task").orderBy("task").execute();
  return rows.map((row) => row.task);
}

export interface AuditRow {
  id: string;
  acted_at: Date;
  actor: string;
  remote_addr: string | null;
  action: string;
  job_ids: string[];
  outcome: unknown;
}

/** The dashboard actions that touched a job, newest first. */
export async function actionsOnJob(db: Db, jobId: string): Promise<AuditRow[]> {
  return db
    .selectFrom("pgjobs.dashboard_actions")
    .select(["id", "acted_at", "actor", "remote_addr", "action", "job_ids", "outcome"])
    .where(sql<boolean>`job_ids @> array[${jobId}::bigint]`)
    .orderBy("id", "desc")
    .limit(20)
    .execute();
}
