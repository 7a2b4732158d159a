/**
 * `pgjobs prune`: what the hourly pgjobs__prune_history does, now, with progress on standard
 * error: finished attempts older than the retention per state (or --older-than for all), in
 * batches, one short transaction each. Never an attempt of a job still in the queue.
 */
import { count } from "../../read/format.ts";
import { pruneHistory, retentionSchema } from "../../history/prune.ts";
import { type CliContext, withDatabase } from "../context.ts";
import { UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import { print, printJson, progress } from "../output.ts";
import { parseAge } from "./list.ts";

export async function pruneCommand(
  cli: CliContext,
  args: { olderThan?: string; batchSize?: string; json: boolean },
): Promise<number> {
  let retention = retentionSchema.parse({});
  if (args.olderThan !== undefined) {
    const minutes = Math.floor(parseAge("--older-than", args.olderThan) / 60_000);
    if (minutes < 1) throw new UsageError(`--older-than "${args.olderThan}" must be at least 1 minute.`);
    const age = `${minutes} minutes`;
    retention = retentionSchema.parse(Object.fromEntries(Object.keys(retention).map((state) => [state, age])));
  }
  const batchSize = args.batchSize === undefined ? 5000 : Number(args.batchSize);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) {
    throw new UsageError(`--batch-size "${args.batchSize}" must be a whole number from 1 to 100000.`);
  }
  const started = Date.now();
  const outcome = await withDatabase(cli, "pgjobs prune", (session) =>
    pruneHistory(session.db, retention, {
      batchSize,
      maxBatches: Number.MAX_SAFE_INTEGER,
      onBatch: ({ deleted, batches }) => progress(`prune: batch ${batches}, ${count(deleted)} attempts deleted so far`),
    }),
  );
  const result = { ...outcome, retention, seconds: (Date.now() - started) / 1000 };
  if (args.json) printJson(result);
  else {
    print(
      outcome.deleted === 0
        ? "Nothing to prune: no finished attempt is older than its retention."
        : `Pruned ${count(outcome.deleted)} finished attempts in ${outcome.batches} batch(es), ${result.seconds.toFixed(1)} s.`,
    );
  }
  return EXIT.OK;
}
