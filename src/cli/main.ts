/**
 * `pgjobs` command line. Human output by default, `--json` for scripts; exit 0 on success,
 * 1 on failure, 2 on a usage mistake.
 */
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config.ts";
import { CreditError } from "../credits/credits.errors.ts";
import { InvalidPayloadError } from "../enqueue/enqueue.ts";
import { JobActionError } from "../enqueue/job-actions.ts";
import { JobNotFoundError, JobResultTimeoutError } from "../history/wait-for-result.ts";
import { createLogger } from "../logger.ts";
import { UnknownTaskError } from "../tasks/index.ts";
import { addCommand } from "./commands/add.ts";
import { creditsCommand } from "./commands/credits.ts";
import { dashboardCommand } from "./commands/dashboard.ts";
import { migrateCommand } from "./commands/migrate.ts";
import { runCommand } from "./commands/run.ts";
import { cancelCommand, jobCommand, resultCommand, retryCommand } from "./commands/jobs.ts";
import { workerCommand } from "./commands/worker.ts";
import { UsageError } from "./errors.ts";

const HELP = `pgjobs: background and scheduled jobs on PostgreSQL alone.

Usage: pgjobs <command> [options]

Commands:
  worker                       migrate, then run jobs and the crontab until SIGINT/SIGTERM
  migrate                      apply graphile-worker's and pgjobs' migrations
  dashboard                    web dashboard and /metrics on PGJOBS_DASHBOARD_PORT (5555) until SIGINT/SIGTERM
  add <task> <json-payload>    validate the payload and enqueue a job (payload: JSON, @file or - for stdin)
        [--run-at ISO] [--job-key KEY] [--queue NAME] [--priority N] [--max-attempts N]
  run <task> <json-payload>    run a task now in this process, without the queue, and print its result
  result <job-id> [--wait] [--timeout SECONDS]
                               the job's result (exit 0) or error (exit 1); --wait until it finishes
  job <job-id>                 what happened to a job: state now, and every attempt
  retry <job-id>               give a failed or rejected job fresh attempts (a finished one: enqueue it again)
  cancel <job-id>              remove a job that is not running (history records it cancelled)
  credits show <account-id>    an account's available credit, holds and recent ledger
  credits expire [--dry-run]   expire due credit holds now (the 3-hourly sweep); --dry-run only counts them

Options:
  --json      machine-readable output
  -h, --help  this help

Database: DATABASE_URL, or with none set an embedded PostgreSQL under PGJOBS_DATA_DIR (.pgjobs).
`;

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      "run-at": { type: "string" },
      "job-key": { type: "string" },
      queue: { type: "string" },
      priority: { type: "string" },
      "max-attempts": { type: "string" },
      wait: { type: "boolean", default: false },
      timeout: { type: "string", default: "30" },
      "dry-run": { type: "boolean", default: false },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || command === undefined || command === "help") {
    console.log(HELP);
    return command === undefined && !values.help ? 2 : 0;
  }
  const config = loadConfig();
  const logger = createLogger(config);
  switch (command) {
    case "worker":
      // Exit as soon as the worker has stopped: a task that ignored its abort signal may still
      // hold the event loop open, and a supervisor needs the exit code now.
      return workerCommand(config, logger).then((code) => process.exit(code));
    case "migrate":
      return migrateCommand(config, logger, { json: values.json });
    case "dashboard":
      return dashboardCommand(config, logger);
    case "add": {
      const [taskName, payloadJson = "{}", ...extra] = rest;
      if (taskName === undefined || extra.length > 0) {
        throw new UsageError(`Usage: pgjobs add <task> '<json-payload>' (got ${rest.length} arguments).`);
      }
      return addCommand(config, logger, {
        taskName,
        payloadJson,
        runAt: values["run-at"],
        jobKey: values["job-key"],
        queue: values.queue,
        priority: values.priority,
        maxAttempts: values["max-attempts"],
        json: values.json,
      });
    }
    case "result":
      return resultCommand(config, logger, {
        jobId: jobIdArgument(rest),
        wait: values.wait,
        timeoutMs: secondsOption("--timeout", values.timeout) * 1000,
        json: values.json,
      });
    case "run": {
      const [taskName, payloadJson = "{}", ...extra] = rest;
      if (taskName === undefined || extra.length > 0) {
        throw new UsageError(`Usage: pgjobs run <task> '<json-payload>' (got ${rest.length} arguments).`);
      }
      return runCommand(config, logger, { taskName, payloadJson, json: values.json });
    }
    case "job":
      return jobCommand(config, logger, { jobId: jobIdArgument(rest), json: values.json });
    case "retry":
      return retryCommand(config, logger, { jobId: jobIdArgument(rest), json: values.json });
    case "cancel":
      return cancelCommand(config, logger, { jobId: jobIdArgument(rest), json: values.json });
    case "credits":
      return creditsCommand(config, logger, { rest, json: values.json, dryRun: values["dry-run"] });
    default:
      throw new UsageError(`Unknown command "${command}". Run pgjobs --help for the list.`);
  }
}

function jobIdArgument(rest: string[]): string {
  const [jobId, ...extra] = rest;
  if (jobId === undefined || extra.length > 0 || !/^\d+$/.test(jobId)) {
    throw new UsageError(`Expected one job id (a number), got: ${rest.join(" ") || "nothing"}.`);
  }
  return jobId;
}

function secondsOption(flag: string, value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`${flag} "${value}" is not a number of seconds.`);
  return seconds;
}

/** Errors whose message is the whole story; anything else also gets its stack. */
function describe(error: unknown): { message: string; exitCode: number } {
  if (error instanceof UsageError) return { message: error.message, exitCode: 2 };
  if (error instanceof Error && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")) {
    return { message: `${error.message}. Run pgjobs --help for usage.`, exitCode: 2 };
  }
  if (
    error instanceof ConfigError ||
    error instanceof UnknownTaskError ||
    error instanceof InvalidPayloadError ||
    error instanceof JobNotFoundError ||
    error instanceof JobResultTimeoutError ||
    error instanceof JobActionError ||
    error instanceof CreditError
  ) {
    return { message: error.message, exitCode: 1 };
  }
  return { message: error instanceof Error ? (error.stack ?? error.message) : String(error), exitCode: 1 };
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const { message, exitCode } = describe(error);
    console.error(`pgjobs: ${message}`);
    process.exitCode = exitCode;
  },
);
