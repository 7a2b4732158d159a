import { readFile } from "node:fs/promises";
import {
  checkEnqueueOptions,
  ENQUEUE_BOUNDS,
  enqueueJob,
  InvalidEnqueueOptionError,
  validatePayload,
} from "../../enqueue/enqueue.ts";
import { type CliContext, openDatabase } from "../context.ts";
import { UsageError } from "../errors.ts";

export interface AddArguments {
  taskName: string;
  payloadJson: string;
  runAt?: string;
  jobKey?: string;
  queue?: string;
  priority?: string;
  maxAttempts?: string;
  json: boolean;
}

/**
 * The payload given on the command line: JSON itself, `@path` for a file holding it, or `-` for
 * standard input (for payloads too large or awkward to quote). Parse errors say how to quote.
 */
export async function readPayloadArgument(command: string, taskName: string, argument: string): Promise<unknown> {
  let text = argument;
  if (argument === "-") {
    text = await readStdin();
  } else if (argument.startsWith("@")) {
    const file = argument.slice(1);
    text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
      throw new UsageError(`Cannot read the payload file ${file} (${error.code ?? error.message}).`);
    });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `The payload for "${taskName}" is not valid JSON (${(error as Error).message}). ` +
        `Quote it for your shell, e.g. pgjobs ${command} ${taskName} '{"key":"value"}', or pass @file.json or - (stdin).`,
    );
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function addCommand(cli: CliContext, args: AddArguments): Promise<number> {
  const payload = await readPayloadArgument("add", args.taskName, args.payloadJson);
  // Checked before touching the database: a typo never reaches the queue.
  validatePayload(cli.registry.get(args.taskName), payload);
  const runAt = args.runAt === undefined ? undefined : parseDate(args.runAt);
  const options = {
    runAt,
    jobKey: args.jobKey,
    queue: args.queue,
    priority: args.priority === undefined ? undefined : parseInteger("--priority", args.priority),
    maxAttempts: args.maxAttempts === undefined ? undefined : parseInteger("--max-attempts", args.maxAttempts),
  };
  try {
    checkEnqueueOptions(options);
  } catch (error) {
    if (!(error instanceof InvalidEnqueueOptionError)) throw error;
    const { min, max } = ENQUEUE_BOUNDS[error.option];
    const flag = error.option === "maxAttempts" ? "--max-attempts" : "--priority";
    throw new UsageError(
      `${flag} must be a whole number from ${min} to ${max} (got ${error.value}); nothing was enqueued.`,
    );
  }
  const session = await openDatabase(cli, { poolSize: 1, applicationName: "pgjobs add" });
  try {
    const job = await enqueueJob(session.db, cli.registry, args.taskName, payload, options);
    if (args.json) {
      console.log(JSON.stringify(job));
    } else {
      console.log(`Enqueued job ${job.id} (${job.taskName}), due ${job.runAt.toISOString()}.`);
    }
    return 0;
  } finally {
    await session.close();
  }
}

function parseDate(value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) {
    throw new UsageError(`--run-at "${value}" is not a date; use ISO 8601, e.g. 2026-01-31T09:00:00Z.`);
  }
  return date;
}

function parseInteger(flag: string, value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number)) throw new UsageError(`${flag} "${value}" is not a whole number.`);
  return number;
}
