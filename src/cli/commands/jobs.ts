/**
 * `pgjobs result <id> [--wait]`, `pgjobs job <id>`, `pgjobs retry`, `pgjobs cancel`: one job, for
 * a person or a script. Retry and cancel are the dashboard's actions (src/operate), recorded in
 * pgjobs.dashboard_actions under the command line's user and host.
 */
import { validatePayload } from "../../enqueue/enqueue.ts";
import { getJobOutcome, type JobOutcome, JobNotFoundError, waitForResult } from "../../history/wait-for-result.ts";
import { BULK_LIMIT, cancelJobs, describeOutcome as describeAction, retryJobs } from "../../operate/actions.ts";
import { count } from "../../read/format.ts";
import { getJob, listJobs } from "../../read/queries.ts";
import { type CliContext, openDatabase, withDatabase } from "../context.ts";
import { CliFailure, UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import { cliActor, print, printJson, progress } from "../output.ts";
import { readPayloadArgument } from "./add.ts";
import { jobFilter, type ListOptions } from "./list.ts";

export async function resultCommand(
  cli: CliContext,
  args: { jobId: string; wait: boolean; timeoutMs: number; json: boolean },
): Promise<number> {
  const session = await openDatabase(cli, { poolSize: 2, applicationName: "pgjobs result" });
  try {
    const outcome = args.wait
      ? await waitForResult(session.pool, args.jobId, { timeoutMs: args.timeoutMs })
      : await getJobOutcome(session.pool, args.jobId);
    if (!outcome) throw new JobNotFoundError(args.jobId);
    if (args.json) printJson(outcome);
    else print(describeOutcome(outcome));
    if (outcome.state === "succeeded") return EXIT.OK;
    if (!outcome.final) {
      if (!args.json) {
        console.error(
          `pgjobs: job ${outcome.jobId} has not finished (${outcome.state}); wait for it with \`pgjobs result ${outcome.jobId} --wait\`.`,
        );
      }
      return EXIT.NOT_FINISHED;
    }
    return EXIT.FAILURE;
  } finally {
    await session.close();
  }
}

export async function jobCommand(cli: CliContext, args: { jobId: string; json: boolean }): Promise<number> {
  const session = await openDatabase(cli, { poolSize: 2, applicationName: "pgjobs job" });
  try {
    const outcome = await getJobOutcome(session.pool, args.jobId);
    if (!outcome) throw new JobNotFoundError(args.jobId);
    const attempts = await session.db
      .selectFrom("pgjobs.runs")
      .select(["attempt", "state", "will_retry", "worker_id", "started_at", "duration_ms", "error_message", "note"])
      .where("job_id", "=", args.jobId)
      .orderBy("attempt")
      .execute();
    if (args.json) {
      printJson({ ...outcome, runs: attempts });
      return EXIT.OK;
    }
    print(describeOutcome(outcome));
    for (const run of attempts) {
      const took = run.duration_ms === null ? "" : ` in ${Math.round(run.duration_ms)} ms`;
      const detail = run.error_message ?? run.note;
      print(
        `  attempt ${run.attempt}: ${run.state}${took}${run.will_retry ? " (will retry)" : ""}` +
          `${run.worker_id ? ` on ${run.worker_id}` : ""}${detail ? ` — ${detail.split("\n")[0]}` : ""}`,
      );
    }
    return EXIT.OK;
  } finally {
    await session.close();
  }
}

function describeOutcome(outcome: JobOutcome): string {
  const head = `Job ${outcome.jobId} (${outcome.task}): ${outcome.state}, attempt ${outcome.attempts} of ${outcome.maxAttempts}`;
  if (outcome.state === "succeeded") return `${head}\nresult: ${JSON.stringify(outcome.result)}`;
  if (outcome.error) return `${head}\nerror: ${outcome.error.message}`;
  return head;
}

/**
 * One job: more attempts now (in the queue) or enqueued again (finished), with `--payload` in
 * place of its own, checked by its task's schema as enqueue checks it. Without `--payload`, a
 * finished job's recorded payload is checked the same way.
 */
export async function retryCommand(
  cli: CliContext,
  args: { jobId: string; payload?: string; json: boolean },
): Promise<number> {
  return withDatabase(cli, "pgjobs retry", async ({ db }) => {
    const detail = await getJob(db, args.jobId);
    if (!detail) throw new JobNotFoundError(args.jobId);
    let payload: unknown;
    if (args.payload !== undefined) {
      const given = await readPayloadArgument("retry", detail.task, args.payload);
      payload = validatePayload(cli.registry.get(detail.task), given);
    } else if (!detail.live) {
      const recorded = detail.attempts.at(-1);
      if (recorded && !recorded.payload_truncated && recorded.payload !== null) {
        validatePayload(cli.registry.get(detail.task), recorded.payload);
      }
    }
    const [outcome] = await retryJobs(db, [args.jobId], cliActor(), { payload });
    if (!outcome) throw new Error(`pgjobs.dashboard_retry returned nothing for job ${args.jobId}`);
    switch (outcome.outcome) {
      case "rescheduled":
      case "enqueued_again":
        if (args.json) printJson(outcome);
        else {
          const text = `${describeAction(outcome)}${payload === undefined ? "" : ", with the given payload"}.`;
          print(text.charAt(0).toUpperCase() + text.slice(1));
        }
        return EXIT.OK;
      case "absent":
        throw new JobNotFoundError(args.jobId);
      case "payload_not_kept":
        throw new CliFailure(
          `job ${args.jobId} (${detail.task}) had finished and its payload was too large to keep: retry it with --payload '<json>'.`,
          EXIT.FAILURE,
        );
      default:
        throw new CliFailure(
          `job ${args.jobId} (${detail.task}) is running on a worker; nothing was changed. Wait for the attempt to end (\`pgjobs result ${args.jobId} --wait\`), then retry.`,
          EXIT.FAILURE,
        );
    }
  });
}

/**
 * Every job a filter matches (a state is required), BULK_LIMIT at a time with progress on
 * standard error, as the dashboard's bulk retry does each click. Pages by job id, so each job is
 * looked at once even when a retried job still matches the filter.
 */
export async function bulkRetryCommand(cli: CliContext, options: ListOptions): Promise<number> {
  const filter = jobFilter(options);
  if (!filter.state) {
    throw new UsageError("Bulk retry needs --state (e.g. --state rejected), so it never enqueues every job again.");
  }
  const actor = cliActor();
  const tally = new Map<string, number>();
  let seen = 0;
  await withDatabase(cli, "pgjobs retry", async ({ db }) => {
    let before = filter.before;
    for (;;) {
      const ids = (await listJobs(db, { ...filter, before }, BULK_LIMIT)).map((row) => row.job_id);
      if (ids.length === 0) break;
      const outcomes = await retryJobs(db, ids, actor, { bulk: true, detail: { cli: options } });
      for (const { outcome } of outcomes) tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
      seen += ids.length;
      before = ids.at(-1);
      progress(`retry: ${count(seen)} job(s) so far (${summary(tally)})`);
      if (ids.length < BULK_LIMIT) break;
    }
  });
  const outcomes = Object.fromEntries(tally);
  if (options.json) printJson({ jobs: seen, outcomes });
  else print(seen === 0 ? "No job matches; nothing was retried." : `Retried ${count(seen)} job(s): ${summary(tally)}.`);
  return EXIT.OK;
}

function summary(tally: Map<string, number>): string {
  return [...tally].map(([outcome, n]) => `${count(n)} ${outcome.replace(/_/g, " ")}`).join(", ");
}

export async function cancelCommand(cli: CliContext, args: { jobId: string; json: boolean }): Promise<number> {
  return withDatabase(cli, "pgjobs cancel", async ({ db }) => {
    const [outcome] = await cancelJobs(db, [args.jobId], cliActor());
    if (outcome?.outcome === "cancelled") {
      if (args.json) printJson(outcome);
      else print(`Job ${args.jobId} cancelled (history records it cancelled).`);
      return EXIT.OK;
    }
    if (outcome?.outcome === "running") {
      throw new CliFailure(
        `job ${args.jobId} is running and cannot be cancelled mid-run; wait for the attempt to end, or stop its worker (the attempt then ends abandoned), then cancel it.`,
        EXIT.FAILURE,
      );
    }
    throw new CliFailure(
      `job ${args.jobId} is not in the queue (it finished, or never existed): nothing to cancel. \`pgjobs job ${args.jobId}\` shows what happened to it.`,
      EXIT.NOT_FOUND,
    );
  });
}
