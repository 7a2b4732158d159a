/**
 * What the dashboard reads. Graphile-worker's private tables only through the SQL functions of
 * src/db/migrations/0008_dashboard.sql; pgjobs' own tables and views directly. Every filter is a bound
 * parameter, and every list is paged by keyset (a job id), never by OFFSET.
 */
import { type Kysely, type Selectable, sql } from "kysely";
import type { Database, JobRunState, RunsView } from "../db/schema.ts";

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

/** The columns of an attempt the job page shows, read from pgjobs.runs. */
const ATTEMPT_COLUMNS = [
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
] as const;

export type Attempt = Pick<Selectable<RunsView>, (typeof ATTEMPT_COLUMNS)[number]>;

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
    db.selectFrom("pgjobs.runs").select(ATTEMPT_COLUMNS).where("job_id", "=", jobId).orderBy("attempt").execute(),
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

/** One queue's jobs by coarse state; the null queue is the jobs of no named queue. */
export interface QueueSummary {
  queue: string | null;
  waiting: number;
  scheduled: number;
  locked: number;
  retrying: number;
  failed: number;
  /** The run_at of the oldest due job that no worker has taken yet. */
  oldestWaiting: Date | null;
}

/** queueCounts() per queue (tasks added up), sorted by name, the unnamed queue first. */
export function summarizeQueues(counts: readonly QueueCount[]): QueueSummary[] {
  const queues = new Map<string, QueueSummary>();
  for (const row of counts) {
    const key = row.queue ?? "";
    const queue = queues.get(key) ?? {
      queue: row.queue,
      waiting: 0,
      scheduled: 0,
      locked: 0,
      retrying: 0,
      failed: 0,
      oldestWaiting: null,
    };
    queue[row.state] += row.jobs;
    if (
      row.state === "waiting" &&
      row.oldest_run_at &&
      (!queue.oldestWaiting || row.oldest_run_at < queue.oldestWaiting)
    ) {
      queue.oldestWaiting = row.oldest_run_at;
    }
    queues.set(key, queue);
  }
  return [...queues.values()].sort((a, b) => (a.queue ?? "").localeCompare(b.queue ?? ""));
}

export interface ThroughputPoint {
  minute: Date;
  succeeded: number;
  failed: number;
}

/**
 * Rolls closed hours of history up (pgjobs.dashboard_roll_up) and says up to when: numbers before
 * the frontier come from the rollup tables, after it from pgjobs.job_runs itself.
 */
async function rollUp(db: Db): Promise<{ frontier: Date; now: Date }> {
  const rolled = await sql<{ frontier: Date | null; now: Date }>`
    select nullif(pgjobs.dashboard_roll_up(), '-infinity') as frontier, now() as now`
    .execute(db)
    .catch(async (error: unknown) => {
      // A read replica (or a role that may not write) cannot roll up: use what the primary
      // rolled up, and read the rest from job_runs.
      if ((error as { code?: string }).code !== "25006" && (error as { code?: string }).code !== "42501") throw error;
      return sql<{ frontier: Date | null; now: Date }>`
        select (select r.rolled_until from pgjobs.dashboard_rollup r) as frontier, now() as now`.execute(db);
    });
  const row = rolled.rows[0]!;
  return { frontier: row.frontier ?? new Date(0), now: row.now };
}

function later(a: Date, b: Date): Date {
  return a.getTime() >= b.getTime() ? a : b;
}

/**
 * Attempts ended per minute over the window, every minute present (quiet ones as zeros, so the
 * chart spans the whole window): closed hours from the rollup, the rest from the BRIN index.
 */
export async function throughput(db: Db, hours: number): Promise<ThroughputPoint[]> {
  const { frontier, now } = await rollUp(db);
  const start = new Date(Math.floor(now.getTime() / 60_000) * 60_000 - hours * 3_600_000);
  const rawFrom = later(start, frontier);
  const { rows } = await sql<{ minute: Date; succeeded: string; failed: string }>`
    with rolled as (
      select m.minute, m.succeeded, m.failed
        from pgjobs.dashboard_minutes m
       where m.minute >= ${start} and m.minute < ${rawFrom}
    ), recent as (
      select date_trunc('minute', r.finished_at, 'UTC') as minute,
             count(*) filter (where r.state = 'succeeded') as succeeded,
             count(*) filter (where r.state in ('failed', 'rejected', 'timed_out', 'abandoned')) as failed
        from pgjobs.job_runs r
       where r.finished_at >= ${rawFrom}
       group by 1
    )
    select g.minute, coalesce(o.succeeded, n.succeeded, 0) as succeeded, coalesce(o.failed, n.failed, 0) as failed
      from generate_series(${start}::timestamptz, date_trunc('minute', now(), 'UTC'), interval '1 minute') as g(minute)
      left join rolled o on o.minute = g.minute
      left join recent n on n.minute = g.minute
     order by g.minute`.execute(db);
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
 * pgjobs.task_summary's numbers for the attempts that ended since the top of the hour `hours` ago,
 * and those running now: closed hours from the rollup tables, the rest from
 * pgjobs.job_runs. p50/p95 come from a histogram of durations (within 2.5%).
 */
export async function taskSummary(db: Db, hours: number): Promise<{ since: Date; rows: TaskSummaryRow[] }> {
  const { frontier, now } = await rollUp(db);
  // From the top of the hour `hours` ago: the window is whole hours, and at least `hours` long.
  const since = new Date(Math.floor((now.getTime() - hours * 3_600_000) / 3_600_000) * 3_600_000);
  const rawFrom = later(since, frontier);
  const [counts, buckets] = await Promise.all([
    sql<{ task: string; state: string; attempts: string; started: string }>`
      select x.task, x.state, sum(x.attempts) as attempts, sum(x.started) as started
        from (
          select h.task, h.state, h.attempts, h.started
            from pgjobs.dashboard_hours h where h.hour >= ${since} and h.hour < ${rawFrom}
          union all
          select r.task, r.state, 1, (r.started_at is not null)::int
            from pgjobs.job_runs r where r.finished_at >= ${rawFrom}
          union all
          select a.task, 'running', 1, 1 from pgjobs.running_attempts a
        ) x
       group by 1, 2`.execute(db),
    sql<{ task: string; bucket: number; attempts: string }>`
      select x.task, x.bucket, sum(x.attempts) as attempts
        from (
          select d.task, d.bucket, d.attempts
            from pgjobs.dashboard_durations d where d.hour >= ${since} and d.hour < ${rawFrom}
          union all
          select r.task, floor(ln(greatest(r.duration_ms, 0.001)) * ${BUCKETS_PER_E}::int)::int, 1
            from pgjobs.job_runs r where r.finished_at >= ${rawFrom} and r.duration_ms is not null
        ) x
       group by 1, 2`.execute(db),
  ]);
  const tasks = new Map<string, { row: TaskSummaryRow; buckets: Map<number, number> }>();
  const entry = (task: string) => {
    let found = tasks.get(task);
    if (!found) {
      found = { row: emptySummary(task), buckets: new Map() };
      tasks.set(task, found);
    }
    return found;
  };
  for (const part of counts.rows) {
    const { row } = entry(part.task);
    const n = Number(part.attempts);
    row.attempts += Number(part.started);
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
  }
  for (const part of buckets.rows) entry(part.task).buckets.set(part.bucket, Number(part.attempts));
  const rows = [...tasks.values()]
    .map(({ row, buckets: histogram }) => {
      const ended = row.attempts - row.running;
      row.success_rate = ended > 0 ? row.succeeded / ended : null;
      row.p50_ms = percentile(histogram, 0.5);
      row.p95_ms = percentile(histogram, 0.95);
      return row;
    })
    .sort((a, b) => a.task.localeCompare(b.task));
  return { since, rows };
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

export interface DeadJobRow {
  job_id: string;
  task: string;
  queue: string | null;
  attempts: number;
  max_attempts: number;
  /** How its last attempt ended: failed, rejected, timed_out, abandoned (failed when it has none). */
  state: string;
  error_message: string | null;
  /** When its last attempt ended. */
  failed_at: Date | null;
}

/**
 * Jobs out of attempts that stay in the queue until a person retries or cancels them (a rejected
 * payload, a permanent failure, attempts used up), newest first.
 */
export async function deadJobs(
  db: Db,
  filter: { task?: string; queue?: string } = {},
  limit = PAGE_SIZE,
): Promise<DeadJobRow[]> {
  const { rows } = await sql<DeadJobRow>`
    select j.id as job_id, j.task, j.queue, j.attempts::integer as attempts, j.max_attempts::integer as max_attempts,
           coalesce(l.state, 'failed') as state, coalesce(l.error_message, j.last_error) as error_message,
           l.finished_at as failed_at
      from pgjobs.queued_jobs j
      left join lateral (
        select r.state, r.error_message, r.finished_at
          from pgjobs.job_runs r where r.job_id = j.id order by r.attempt desc limit 1
      ) l on true
     where j.attempts >= j.max_attempts and j.locked_by is null
       and (${filter.task ?? null}::text is null or j.task = ${filter.task ?? null}::text)
       and (${filter.queue ?? null}::text is null or j.queue = ${filter.queue ?? null}::text)
     order by j.id desc
     limit ${limit}::int`.execute(db);
  return rows;
}
