/**
 * Retention for pgjobs.job_runs: deletes finished attempts older than an age per state, in
 * bounded batches (one short transaction each), oldest first. Never touches a running attempt
 * or any attempt of a job still in the queue.
 */
import { type Kysely, sql } from "kysely";
import { z } from "zod";
import type { Database } from "../db/schema.ts";

const age = z.string().regex(/^\d+\s*(minutes?|hours?|days?|weeks?|months?)$/, {
  message: 'must be a whole number and a unit, such as "36 hours" or "30 days"',
});

export const retentionSchema = z
  .object({
    succeeded: age.default("7 days"),
    cancelled: age.default("7 days"),
    failed: age.default("30 days"),
    rejected: age.default("30 days"),
    timed_out: age.default("30 days"),
    abandoned: age.default("30 days"),
  })
  .strict();

export type Retention = z.output<typeof retentionSchema>;

export async function pruneHistory(
  db: Kysely<Database>,
  retention: Retention,
  options: {
    batchSize: number;
    maxBatches: number;
    signal?: AbortSignal;
    /** Called after each batch with the running totals: progress for a person watching. */
    onBatch?: (progress: { deleted: number; batches: number }) => void;
  },
): Promise<{ deleted: number; batches: number }> {
  let deleted = 0;
  let batches = 0;
  while (batches < options.maxBatches && !options.signal?.aborted) {
    const { numAffectedRows } = await sql`
      delete from pgjobs.job_runs
       where id in (
         select r.id
           from pgjobs.job_runs r
           join jsonb_each_text(${JSON.stringify(retention)}::jsonb) as keep(state, age) on keep.state = r.state
          where r.finished_at < now() - keep.age::interval
            and not exists (select 1 from pgjobs.queued_jobs j where j.id = r.job_id)
          order by r.finished_at
          limit ${options.batchSize}
            for update of r skip locked
       )`.execute(db);
    const count = Number(numAffectedRows ?? 0);
    deleted += count;
    batches += 1;
    options.onBatch?.({ deleted, batches });
    if (count < options.batchSize) break;
  }
  return { deleted, batches };
}
