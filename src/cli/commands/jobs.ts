/**
 * `pgjobs result <id> [--wait]` and `pgjobs job <id>`: what happened to a job, for a person or
 * a script.
 */
import { getJobOutcome, type JobOutcome, JobNotFoundError, waitForResult } from "../../history/wait-for-result.ts";
import { cancelJob, retryJob } from "../../enqueue/job-actions.ts";
import { type CliContext, openDatabase } from "../context.ts";

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
    if (args.json) {
      console.log(JSON.stringify(outcome));
    } else {
      console.log(describeOutcome(outcome));
    }
    return outcome.state === "succeeded" ? 0 : 1;
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
      console.log(JSON.stringify({ ...outcome, runs: attempts }));
      return 0;
    }
    console.log(describeOutcome(outcome));
    for (const run of attempts) {
      const took = run.duration_ms === null ? "" : ` in ${Math.round(run.duration_ms)} ms`;
      const detail = run.error_message ?? run.note;
      console.log(
        `  attempt ${run.attempt}: ${run.state}${took}${run.will_retry ? " (will retry)" : ""}` +
          `${run.worker_id ? ` on ${run.worker_id}` : ""}${detail ? ` — ${detail.split("\n")[0]}` : ""}`,
      );
    }
    return 0;
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

export async function retryCommand(cli: CliContext, args: { jobId: string; json: boolean }): Promise<number> {
  const session = await openDatabase(cli, { poolSize: 2, applicationName: "pgjobs retry" });
  try {
    const outcome = await retryJob(session.db, cli.registry, args.jobId);
    console.log(
      args.json
        ? JSON.stringify(outcome)
        : outcome.kind === "rescheduled"
          ? `Job ${args.jobId} will run again now, with fresh attempts.`
          : `Job ${args.jobId} had finished; enqueued it again with the same payload as job ${outcome.jobId}.`,
    );
    return 0;
  } finally {
    await session.close();
  }
}

export async function cancelCommand(cli: CliContext, args: { jobId: string; json: boolean }): Promise<number> {
  const session = await openDatabase(cli, { poolSize: 2, applicationName: "pgjobs cancel" });
  try {
    await cancelJob(session.db, args.jobId);
    console.log(
      args.json
        ? JSON.stringify({ cancelled: args.jobId })
        : `Job ${args.jobId} cancelled (recorded in pgjobs.job_runs).`,
    );
    return 0;
  } finally {
    await session.close();
  }
}
