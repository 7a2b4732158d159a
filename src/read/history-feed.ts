/**
 * The attempts that ended since the last read, each exactly once, for counters that only go up
 * (pruning history must not make a Prometheus counter fall). Rows are read by id; an id can
 * become visible after a larger one (its transaction committed later), so ids above the
 * watermark are remembered until every transaction that could still hold a smaller id has ended,
 * as PostgreSQL's snapshots tell: the watermark moves to a read's largest id once the oldest
 * running transaction is newer than everything that was running at the read after it.
 */
import { sql } from "kysely";
import type { Db } from "./queries.ts";

export interface EndedAttempt {
  id: string;
  task: string;
  state: string;
  duration_ms: number | null;
}

/** Rows per read; a backlog larger than this is worked off over the following reads. */
const READ_LIMIT = 50_000;

export class HistoryFeed {
  private watermark: bigint | undefined;
  private readonly seen = new Set<string>();
  private readonly reads: Array<{ maxId: bigint; xmax: bigint }> = [];

  /** Attempts that ended since the previous call (none on the first: it only marks the start). */
  async next(db: Db): Promise<EndedAttempt[]> {
    if (this.watermark === undefined) {
      const { rows } = await sql<{ max_id: string | null }>`select max(id) as max_id from pgjobs.job_runs`.execute(db);
      this.watermark = BigInt(rows[0]?.max_id ?? 0);
      return [];
    }
    const { rows } = await sql<EndedAttempt & { id: string | null; xmin: string; xmax: string }>`
      with snapshot as (
        select pg_snapshot_xmin(s)::text as xmin, pg_snapshot_xmax(s)::text as xmax from pg_current_snapshot() s
      ), ended as (
        select r.id, r.task, r.state, r.duration_ms
          from pgjobs.job_runs r
         where r.id > ${String(this.watermark)}::bigint
         order by r.id
         limit ${READ_LIMIT}
      )
      select snapshot.xmin, snapshot.xmax, ended.* from snapshot left join ended on true order by ended.id`.execute(db);
    const first = rows[0];
    if (!first) throw new Error("pgjobs.job_runs read returned no snapshot row");
    const fresh: EndedAttempt[] = [];
    let maxId = this.watermark;
    for (const row of rows) {
      if (row.id === null) continue;
      const id = BigInt(row.id);
      if (id > maxId) maxId = id;
      if (this.seen.has(row.id)) continue;
      this.seen.add(row.id);
      fresh.push({ id: row.id, task: row.task, state: row.state, duration_ms: row.duration_ms });
    }
    this.reads.push({ maxId, xmax: BigInt(first.xmax) });
    this.advance(BigInt(first.xmin));
    return fresh;
  }

  private advance(oldestRunning: bigint): void {
    // A read's ids are final once the transactions running at the *next* read have ended too:
    // a margin for a transaction that took its id just before a read and its xid just after.
    while (this.reads.length >= 2 && this.reads[1]!.xmax <= oldestRunning) {
      const done = this.reads.shift()!;
      if (done.maxId > this.watermark!) this.watermark = done.maxId;
    }
    for (const id of this.seen) if (BigInt(id) <= this.watermark!) this.seen.delete(id);
  }
}
