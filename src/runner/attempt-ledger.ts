/**
 * The runner's writes about attempts, none of them in a job's way:
 *   - which task bodies run now, per worker: the whole set, rewritten in the background as
 *     bodies start (pgjobs.record_running), so a crash can tell started attempts from
 *     prefetched jobs and the views can say "running";
 *   - what only the runner knows when an attempt ends (result, error and stack, the precise
 *     state), batched, before the engine completes or fails the job.
 * The engine's own statements record every other end (migrations/0004_attempts_and_workers.sql).
 */
import { type Kysely, sql } from "kysely";
import type { Database, JobRunState } from "../db/schema.ts";
import { storableText } from "../enqueue/payload-guard.ts";
import { WriteBatcher } from "./write-batcher.ts";

export interface AttemptEnd {
  jobId: string;
  /** The worker (graphile-worker pool id) that holds the job. */
  workerId: string;
  state: Extract<JobRunState, "succeeded" | "failed" | "rejected" | "timed_out">;
  /** How long the task body ran, by the runner's clock. */
  ranMs: number;
  result?: unknown;
  error?: unknown;
  note?: string;
  /** For failures: graphile-worker will run the job again. */
  willRetry?: boolean;
}

export class AttemptLedger {
  private readonly db: Kysely<Database>;
  private readonly ends: WriteBatcher<AttemptEnd, undefined>;
  private readonly running = new Map<string, RunningReport>();

  constructor(db: Kysely<Database>) {
    this.db = db;
    this.ends = new WriteBatcher(async (ends) => {
      await this.writeEnds(ends);
      return ends.map(() => undefined);
    });
  }

  /** The job's task body starts now. Reported in the background; nothing waits for it. */
  started(jobId: string, workerId: string): void {
    this.report(workerId).add(jobId);
  }

  /** The job's task body is done (its end, if the runner records one, goes through `end`). */
  stopped(jobId: string, workerId: string): void {
    this.running.get(workerId)?.delete(jobId);
  }

  /** Writes every worker's running set again (each heartbeat does). */
  refreshRunning(): void {
    for (const report of this.running.values()) report.refresh();
  }

  /** Records an attempt's end with what the runner knows; resolves once it is written. */
  async end(attemptEnd: AttemptEnd): Promise<void> {
    await this.ends.push(attemptEnd);
  }

  private report(workerId: string): RunningReport {
    let report = this.running.get(workerId);
    if (!report) {
      report = new RunningReport((jobIds) =>
        sql`select pgjobs.record_running(${workerId}, ${jobIds}::bigint[])`.execute(this.db).then(() => {}),
      );
      this.running.set(workerId, report);
    }
    return report;
  }

  private async writeEnds(ends: AttemptEnd[]): Promise<void> {
    for (const [workerId, group] of groupBy(ends, (end) => end.workerId)) {
      await recordEnds(this.db, workerId, group);
    }
  }
}

/**
 * Records ended attempts of jobs `workerId` still holds. In a transactional task's own
 * transaction, its success commits with its effects: a rerun after a crash sees it.
 */
export async function recordEnds(db: Kysely<Database>, workerId: string, ends: AttemptEnd[]): Promise<void> {
  await sql`select pgjobs.finish_attempts(${workerId}, ${JSON.stringify(ends.map(endRow))}::json)`.execute(db);
}

/**
 * How long a started body may go unreported. A worker killed within this window of a start is
 * thought never to have started that job: it gets no `abandoned` row and its attempt is given
 * back. The price of not putting a database write in front of every job.
 */
export const RUNNING_REPORT_DELAY_MS = 25;

/**
 * One worker's running set, rewritten whole: a change while a write is in flight is carried by
 * the next write, so a burst of starts costs one or two statements, and a failed write is
 * repaired by the next change or heartbeat.
 */
class RunningReport {
  private readonly jobIds = new Set<string>();
  private writing = false;
  private dirty = false;
  private readonly write: (jobIds: string[]) => Promise<void>;

  constructor(write: (jobIds: string[]) => Promise<void>) {
    this.write = write;
  }

  add(jobId: string): void {
    this.jobIds.add(jobId);
    this.refresh();
  }

  /** Writes the set again (a heartbeat repairs a write that failed). */
  refresh(): void {
    this.dirty = true;
    if (this.writing) return;
    this.writing = true;
    // Starts within the next few milliseconds join this write: under load the set is written
    // some 40 times a second, not once per job.
    setTimeout(() => void this.flush(), RUNNING_REPORT_DELAY_MS);
  }

  delete(jobId: string): void {
    // Not worth a write on its own: a finished job is no longer locked, so the database
    // disregards it; the next start or heartbeat drops it from the row.
    this.jobIds.delete(jobId);
  }

  private async flush(): Promise<void> {
    try {
      while (this.dirty) {
        this.dirty = false;
        await this.write([...this.jobIds]).catch(() => {
          // The database is unreachable or busy: the next start or heartbeat rewrites the set.
        });
        if (this.dirty) await new Promise((resolve) => setTimeout(resolve, RUNNING_REPORT_DELAY_MS));
      }
    } finally {
      this.writing = false;
    }
  }
}

/**
 * The attempt of this job (same revision) that already succeeded, if any: a transactional task
 * committed, then its worker died before graphile-worker completed the job.
 */
export async function findSucceededAttempt(
  db: Kysely<Database>,
  jobId: string,
  revision: number,
): Promise<{ attempt: number; result: unknown } | undefined> {
  return db
    .selectFrom("pgjobs.job_runs")
    .select(["attempt", "result"])
    .where("job_id", "=", jobId)
    .where("state", "=", "succeeded")
    .where("revision", "=", revision)
    .orderBy("attempt")
    .limit(1)
    .executeTakeFirst();
}

/** JSON text for a result: bigints become strings, undefined becomes null. */
export function toJson(value: unknown): string {
  return JSON.stringify(value ?? null, (_key, item: unknown) => (typeof item === "bigint" ? item.toString() : item));
}

/** One element of finish_attempts' JSON: text fields made storable (an error may quote a bad payload). */
function endRow(end: AttemptEnd) {
  const error = end.error === undefined ? undefined : describeError(end.error);
  return {
    job_id: end.jobId,
    state: end.state,
    result: end.result === undefined ? null : (JSON.parse(toJson(end.result)) as unknown),
    error_message: error ? storableText(error.message) : null,
    error_stack: error?.stack ? storableText(error.stack) : null,
    note: end.note === undefined ? null : storableText(end.note),
    will_retry: end.willRetry ?? false,
    ran_ms: end.ranMs,
  };
}

function describeError(error: unknown): { message: string; stack: string | null } {
  if (error instanceof Error) return { message: error.message, stack: error.stack ?? null };
  return { message: typeof error === "string" ? error : toJson(error), stack: null };
}

function groupBy<Item>(items: Item[], key: (item: Item) => string): Map<string, Item[]> {
  const groups = new Map<string, Item[]>();
  for (const item of items) {
    const group = groups.get(key(item));
    if (group) group.push(item);
    else groups.set(key(item), [item]);
  }
  return groups;
}
