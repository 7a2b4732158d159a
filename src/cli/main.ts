/**
 * `pgjobs` command line. Human output by default, `--json` for scripts; exit 0 on success,
 * 1 on failure, 2 on a usage mistake.
 */
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config.ts";
import { InvalidPayloadError } from "../enqueue/enqueue.ts";
import { createLogger } from "../logger.ts";
import { UnknownTaskError } from "../tasks/index.ts";
import { addCommand } from "./commands/add.ts";
import { migrateCommand } from "./commands/migrate.ts";
import { workerCommand } from "./commands/worker.ts";
import { UsageError } from "./errors.ts";

const HELP = `pgjobs: background and scheduled jobs on PostgreSQL alone.

Usage: pgjobs <command> [options]

Commands:
  worker                       migrate, then run jobs and the crontab until SIGINT/SIGTERM
  migrate                      apply graphile-worker's and pgjobs' migrations
  add <task> <json-payload>    validate the payload and enqueue a job
        [--run-at ISO] [--job-key KEY] [--queue NAME] [--priority N] [--max-attempts N]

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
      return workerCommand(config, logger);
    case "migrate":
      return migrateCommand(config, logger, { json: values.json });
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
    default:
      throw new UsageError(`Unknown command "${command}". Run pgjobs --help for the list.`);
  }
}

/** Errors whose message is the whole story; anything else also gets its stack. */
function describe(error: unknown): { message: string; exitCode: number } {
  if (error instanceof UsageError) return { message: error.message, exitCode: 2 };
  if (error instanceof Error && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")) {
    return { message: `${error.message}. Run pgjobs --help for usage.`, exitCode: 2 };
  }
  if (error instanceof ConfigError || error instanceof UnknownTaskError || error instanceof InvalidPayloadError) {
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
