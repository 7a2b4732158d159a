/**
 * Worker liveness: each worker registers in pgjobs.workers, heartbeats, and reaps workers that
 * fell silent for longer than the liveness bound: their started attempts end `abandoned` and
 * their jobs go back to the queue in seconds, not after graphile-worker's 4-hour lock expiry.
 * Time is the database's alone, so hosts with skewed clocks agree. A worker that finds it was
 * reaped while it was away (a pause longer than the bound) must stop: its jobs are elsewhere now.
 */
import os from "node:os";
import { type Kysely, sql } from "kysely";
import type { Database } from "../db/schema.ts";
import type { Logger } from "../logger.ts";
import { PGJOBS_VERSION } from "../version.ts";

export interface LivenessOptions {
  workerId: string;
  concurrency: number;
  tasks: readonly string[];
  /** A worker silent for longer than this is reaped by the others. */
  livenessTimeoutMs: number;
  logger: Logger;
  /** Called once if this worker learns it was reaped. */
  onReaped: (silentForSeconds: number) => void;
  /** Called at each beat: the runner rewrites its running set (repairing a write that failed). */
  onBeat?: () => void;
}

interface HeartbeatRow {
  worker_id: string;
  state: string;
  host: string | null;
  pid: number | null;
  silent_seconds: number | null;
  abandoned: number;
  returned: number;
}

/** How often a worker heartbeats (and reaps): well inside the bound, so a pause of a beat or two is harmless. */
export function heartbeatIntervalMs(livenessTimeoutMs: number): number {
  return Math.min(5000, Math.max(100, Math.floor(livenessTimeoutMs / 6)));
}

export class Liveness {
  private timer: NodeJS.Timeout | undefined;
  private lastBeatAt = Date.now();
  private reaped = false;
  private failing = false;

  private readonly db: Kysely<Database>;
  private readonly options: LivenessOptions;

  constructor(db: Kysely<Database>, options: LivenessOptions) {
    this.db = db;
    this.options = options;
  }

  async register(): Promise<void> {
    const { workerId, concurrency, tasks } = this.options;
    await sql`select pgjobs.register_worker(${workerId}, ${os.hostname()}, ${process.pid}::int, ${PGJOBS_VERSION},
                ${concurrency}::int, ${[...tasks]}::text[])`.execute(this.db);
    this.lastBeatAt = Date.now();
  }

  start(): void {
    const every = heartbeatIntervalMs(this.options.livenessTimeoutMs);
    const tick = () => {
      void this.beat().finally(() => {
        if (this.timer) this.timer = setTimeout(tick, every).unref();
      });
    };
    this.timer = setTimeout(tick, every).unref();
  }

  /**
   * True when this worker may have been reaped: its last successful heartbeat is older than
   * most of the bound. A finished job is then checked against the database before it completes.
   */
  mayHaveBeenReaped(): boolean {
    return this.reaped || Date.now() - this.lastBeatAt > this.options.livenessTimeoutMs * 0.8;
  }

  /** Records that a graceful stop began (heartbeats go on until it ends). */
  async markStopping(): Promise<void> {
    await sql`select pgjobs.worker_stopping(${this.options.workerId})`.execute(this.db);
  }

  /** Stops heartbeating and records the stop; anything still locked by this worker goes back. */
  async stop(reason: string): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.reaped) return;
    await sql`select pgjobs.stop_worker(${this.options.workerId}, ${reason})`.execute(this.db);
  }

  private async beat(): Promise<void> {
    const { workerId, livenessTimeoutMs, logger } = this.options;
    this.options.onBeat?.();
    let rows: HeartbeatRow[];
    try {
      ({ rows } = await sql<HeartbeatRow>`
        select worker_id, state, host, pid, extract(epoch from silent_for)::float8 as silent_seconds, abandoned, returned
          from pgjobs.heartbeat(${workerId}, make_interval(secs => ${livenessTimeoutMs / 1000}))`.execute(this.db));
    } catch (error) {
      if (!this.failing) logger.warn({ err: error }, "heartbeat failed; retrying at the next beat");
      this.failing = true;
      return;
    }
    this.failing = false;
    for (const row of rows) {
      if (row.worker_id === workerId) {
        if (row.state === "lost" && !this.reaped) {
          this.reaped = true;
          this.options.onReaped(row.silent_seconds ?? 0);
        }
        continue;
      }
      logger.warn(
        { reapedWorker: row.worker_id, host: row.host, pid: row.pid, silentSeconds: row.silent_seconds },
        `worker ${row.worker_id} (${row.host ?? "?"}, pid ${row.pid ?? "?"}) sent no heartbeat for ` +
          `${Math.round(row.silent_seconds ?? 0)} s: reaped it; ${row.abandoned} running attempt(s) recorded abandoned ` +
          `and will run again, ${row.returned} prefetched job(s) returned to the queue`,
      );
    }
    if (!this.reaped) this.lastBeatAt = Date.now();
  }
}
