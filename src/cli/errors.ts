/** What the CLI prints when a command fails: what went wrong, in words; the stack only if asked. */
import { EXIT } from "./exit-codes.ts";

/** An error the CLI prints as is (no stack): the message already says what to do. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export function describeError(error: unknown, verbose: boolean): { message: string; exitCode: number } {
  if (error instanceof UsageError) return { message: error.message, exitCode: EXIT.USAGE };
  if (error instanceof Error && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")) {
    return { message: `${error.message}. Run pgjobs --help for usage.`, exitCode: EXIT.USAGE };
  }
  if (!(error instanceof Error)) return { message: String(error), exitCode: EXIT.FAILURE };
  return { message: verbose ? (error.stack ?? error.message) : error.message, exitCode: EXIT.FAILURE };
}
