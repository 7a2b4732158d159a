/**
 * What the CLI prints when a command fails: one line that says what went wrong and what to do
 * next, and an exit code that tells the kinds apart (exit-codes.ts); the stack only with --verbose.
 */
import { JobNotFoundError, JobResultTimeoutError } from "../history/wait-for-result.ts";
import { EXIT } from "./exit-codes.ts";

/** An error the CLI prints as is (no stack): the message already says what to do. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** An expected failure with its own exit code (a job not found, not finished): printed as is. */
export class CliFailure extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = "CliFailure";
    this.exitCode = exitCode;
  }
}

interface ErrorFacts {
  code?: string;
  address?: string;
  hostname?: string;
  port?: number;
  message: string;
}

/** The node or PostgreSQL facts of an error, looking through AggregateError (IPv4 and IPv6 tries) and causes. */
function facts(error: Error): ErrorFacts {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current instanceof Error && !seen.has(current)) {
    seen.add(current);
    const { code, address, hostname, port } = current as Error & Partial<ErrorFacts>;
    if (typeof code === "string") return { code, address, hostname, port, message: current.message };
    current = current instanceof AggregateError && current.errors.length > 0 ? current.errors[0] : current.cause;
  }
  return { message: error.message };
}

const CONNECTION_CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "no such host",
  EAI_AGAIN: "the host name did not resolve",
  ETIMEDOUT: "the connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ECONNRESET: "the connection was reset",
  "57P03": "the server is starting up or shutting down",
  "57P01": "the server shut the connection down",
};

/**
 * `where`: the server the command was pointed at (host:port, secrets left out), for the message.
 * Expected failures read as one line; anything else keeps its message, and the stack with --verbose.
 */
export function describeError(
  error: unknown,
  verbose: boolean,
  where = "the configured server",
): { message: string; exitCode: number } {
  if (!(error instanceof Error)) return { message: String(error), exitCode: EXIT.FAILURE };
  const withStack = (message: string) => (verbose && error.stack ? `${message}\n${error.stack}` : message);
  if (error instanceof UsageError) return { message: withStack(error.message), exitCode: EXIT.USAGE };
  if ("code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")) {
    // parseArgs explains a value starting with "-" over three lines: one is what went wrong.
    const [what = error.message] = error.message.split("\n");
    const negative = /argument is ambiguous/.test(what) ? " (a value starting with - goes as --option=-1)" : "";
    return {
      message: withStack(`${what.replace(/\.$/, "")}${negative}. Run pgjobs --help for usage.`),
      exitCode: EXIT.USAGE,
    };
  }
  if ("code" in error && error.code === "ERR_INVALID_URL") {
    return {
      message: withStack(
        "DATABASE_URL is not a valid URL: percent-encode special characters in the user name and password (# as %23, @ as %40, / as %2F), and check the port.",
      ),
      exitCode: EXIT.USAGE,
    };
  }
  if (error instanceof CliFailure) return { message: withStack(error.message), exitCode: error.exitCode };
  if (error instanceof JobNotFoundError) return { message: withStack(error.message), exitCode: EXIT.NOT_FOUND };
  if (error instanceof JobResultTimeoutError) {
    return { message: withStack(error.message), exitCode: EXIT.NOT_FINISHED };
  }
  const { code, address, hostname, port, message } = facts(error);
  const server = address || hostname ? `${address ?? hostname}${port ? `:${port}` : ""}` : where;
  const unreachable = code === undefined ? undefined : CONNECTION_CODES[code];
  if (unreachable || /^Connection terminated|timeout expired/.test(message)) {
    return {
      message: withStack(
        `cannot reach PostgreSQL at ${server} (${unreachable ?? message}): is it running? Check DATABASE_URL. Nothing was done.`,
      ),
      exitCode: EXIT.DATABASE_UNREACHABLE,
    };
  }
  if (code === "28P01" || code === "28000" || code === "3D000") {
    return {
      message: withStack(
        `PostgreSQL at ${where} refused the login (${message}): check the user, password and database in DATABASE_URL.`,
      ),
      exitCode: EXIT.DATABASE_UNREACHABLE,
    };
  }
  if (code === "3F000" || code === "42P01" || code === "42883") {
    return {
      message: withStack(
        `the database at ${where} is not migrated (${message}): run \`pgjobs migrate\` (or start a worker, which migrates), then try again.`,
      ),
      exitCode: EXIT.NOT_MIGRATED,
    };
  }
  if (code === "23514" || code === "22003" || code === "22023") {
    return {
      message: withStack(
        `PostgreSQL refused a value (${message}); nothing was changed. Run pgjobs --help for the bounds.`,
      ),
      exitCode: EXIT.USAGE,
    };
  }
  return { message: verbose ? (error.stack ?? error.message) : error.message, exitCode: EXIT.FAILURE };
}
