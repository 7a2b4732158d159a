/**
 * The jobs filter as a person types it (the dashboard's query string or form, the CLI's options):
 * every value allowlisted or typed before it reaches SQL, and a FilterError that says what to fix.
 */
import { JOB_STATE_FILTERS, type JobFilter, type JobStateFilter } from "./queries.ts";

/** A datetime-local value (no zone) is read as UTC, as the form says. */
function utcInput(value: string | undefined, name: string): Date | undefined {
  if (!value) return undefined;
  const date = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(value) ? value : `${value}Z`);
  if (Number.isNaN(date.getTime())) throw new FilterError(`"${name}" is not a date and time: ${value}`);
  return date;
}

export class FilterError extends Error {}

/** Reads the jobs filter from a query string or a form; every value allowlisted or typed. */
export function readJobFilter(get: (name: string) => string | undefined): JobFilter {
  const state = get("state") || undefined;
  if (state !== undefined && !(JOB_STATE_FILTERS as readonly string[]).includes(state)) {
    throw new FilterError(`Unknown state "${state}". Choose one of: ${JOB_STATE_FILTERS.join(", ")}.`);
  }
  const before = get("before") || undefined;
  if (before !== undefined && !/^\d{1,19}$/.test(before)) throw new FilterError(`"before" must be a job id.`);
  const task = get("task")?.trim() || undefined;
  const queue = get("queue")?.trim() || undefined;
  if ((task?.length ?? 0) > 128 || (queue?.length ?? 0) > 128)
    throw new FilterError("Task and queue names are at most 128 characters.");
  return {
    state: state as JobStateFilter | undefined,
    task,
    queue,
    from: utcInput(get("from"), "from"),
    to: utcInput(get("to"), "to"),
    before,
  };
}
