/**
 * `pgjobs jobs` (the dashboard's jobs list, filtered) and `pgjobs failures` (dead jobs waiting for
 * a person, and the latest failed attempts).
 */
import { count, firstLine, relative, utc } from "../../read/format.ts";
import { FilterError, readJobFilter } from "../../read/job-filter.ts";
import { deadJobs, type JobFilter, listJobs, recentFailures } from "../../read/queries.ts";
import { type CliContext, withDatabase } from "../context.ts";
import { UsageError } from "../errors.ts";
import { EXIT } from "../exit-codes.ts";
import { print, printJson, table } from "../output.ts";

export interface ListOptions {
  task?: string;
  state?: string;
  queue?: string;
  since?: string;
  from?: string;
  to?: string;
  before?: string;
  limit?: string;
  json: boolean;
}

const AGE_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "90s", "30m", "6h", "2d", "1w" → milliseconds. */
export function parseAge(flag: string, value: string): number {
  const match = /^(\d+)\s*([smhdw])$/.exec(value.trim());
  if (!match)
    throw new UsageError(`${flag} "${value}" is not an age; write a number and a unit: 90s, 30m, 6h, 2d, 1w.`);
  const ms = Number(match[1]) * AGE_UNITS[match[2]!]!;
  // Further back than any job, and beyond it lie dates PostgreSQL or JavaScript cannot hold.
  if (ms > MAX_AGE_MS) throw new UsageError(`${flag} "${value}" is more than 100 years; give a shorter age.`);
  return ms;
}

const MAX_AGE_MS = 100 * 366 * 86_400_000;

export function parseLimit(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new UsageError(`--limit "${value}" must be a whole number from 1 to 1000.`);
  }
  return limit;
}

/** The dashboard's filter, from the command line: the same names, states and checks. */
export function jobFilter(options: ListOptions): JobFilter {
  if (options.since !== undefined && options.from !== undefined) {
    throw new UsageError("Give --since or --from, not both.");
  }
  const from =
    options.since === undefined
      ? options.from
      : new Date(Date.now() - parseAge("--since", options.since)).toISOString();
  const values: Record<string, string | undefined> = { ...options, json: undefined, from };
  try {
    return readJobFilter((name) => values[name]);
  } catch (error) {
    if (error instanceof FilterError) throw new UsageError(`${error.message.replace(/^"(\w+)"/, "--$1")}`);
    throw error;
  }
}

function describeFilter(filter: JobFilter): string {
  const parts = Object.entries(filter)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key} ${value instanceof Date ? utc(value) : String(value)}`);
  return parts.length === 0 ? "" : ` (${parts.join(", ")})`;
}

export async function jobsCommand(cli: CliContext, options: ListOptions): Promise<number> {
  const filter = jobFilter(options);
  const limit = parseLimit(options.limit, 50);
  const rows = await withDatabase(cli, "pgjobs jobs", (session) => listJobs(session.db, filter, limit));
  if (options.json) {
    printJson(rows);
    return EXIT.OK;
  }
  if (rows.length === 0) {
    print(`No jobs match${describeFilter(filter)}.`);
    return EXIT.OK;
  }
  const now = new Date();
  print(
    table(
      [
        { title: "JOB", right: true },
        { title: "TASK" },
        { title: "QUEUE" },
        { title: "STATE" },
        { title: "ATTEMPTS", right: true },
        { title: "WHEN" },
        { title: "ERROR" },
      ],
      rows.map((row) => {
        const at = row.in_queue ? row.run_at : row.finished_at;
        const label = row.in_queue ? (at && at > now ? "due" : "since") : "ended";
        return [
          row.job_id,
          row.task,
          row.queue ?? "",
          row.state,
          `${row.attempts}/${row.max_attempts}`,
          at ? `${label} ${relative(at, now)}` : "",
          firstLine(row.error_message, 80),
        ];
      }),
    ),
  );
  if (rows.length === limit) {
    print(`\n${limit} shown, newest first; older ones: add --before ${rows.at(-1)!.job_id}`);
  }
  return EXIT.OK;
}

const FAILURE_WINDOW_MS = 24 * 3_600_000;

export async function failuresCommand(cli: CliContext, options: ListOptions): Promise<number> {
  const limit = parseLimit(options.limit, 20);
  const filter = { task: options.task, queue: options.queue };
  const { dead, recent } = await withDatabase(cli, "pgjobs failures", async (session) => {
    const [dead, recent] = await Promise.all([deadJobs(session.db, filter, limit), recentFailures(session.db, 200)]);
    return { dead, recent };
  });
  const since = new Date(Date.now() - FAILURE_WINDOW_MS);
  const latest = recent
    .filter((row) => row.finished_at !== null && row.finished_at >= since)
    .filter(
      (row) => (filter.task === undefined || row.task === filter.task) && !dead.some((d) => d.job_id === row.job_id),
    )
    .slice(0, limit);
  if (options.json) {
    printJson({ dead, recentFailedAttempts: latest });
    return EXIT.OK;
  }
  const now = new Date();
  if (dead.length === 0) {
    print("No dead jobs: every job in the queue still has attempts left.");
  } else {
    print(`Dead jobs: out of attempts, they stay in the queue until a person acts (newest ${count(dead.length)}):`);
    print(
      table(
        [
          { title: "JOB", right: true },
          { title: "TASK" },
          { title: "QUEUE" },
          { title: "ENDED AS" },
          { title: "ATTEMPTS", right: true },
          { title: "FAILED" },
          { title: "ERROR" },
        ],
        dead.map((row) => [
          row.job_id,
          row.task,
          row.queue ?? "",
          row.state,
          `${row.attempts}/${row.max_attempts}`,
          row.failed_at ? relative(row.failed_at, now) : "",
          firstLine(row.error_message, 80),
        ]),
      ),
    );
    print(
      "\nWhat to do: fix the cause, then `pgjobs retry <job>` (a rejected payload: `pgjobs retry <job> --payload '<json>'`; " +
        "all of one kind: `pgjobs retry --state rejected --task <task>`), or remove it with `pgjobs cancel <job>`.",
    );
  }
  print("");
  if (latest.length === 0) {
    print("No failed attempts in the last 24 h besides those.");
  } else {
    print("Failed attempts in the last 24 h (newest first):");
    print(
      table(
        [
          { title: "JOB", right: true },
          { title: "TASK" },
          { title: "ATTEMPT", right: true },
          { title: "ENDED AS" },
          { title: "WHEN" },
          { title: "ERROR" },
        ],
        latest.map((row) => [
          row.job_id,
          row.task,
          String(row.attempt),
          row.will_retry ? `${row.state}, will retry` : row.state,
          row.finished_at ? relative(row.finished_at, now) : "",
          firstLine(row.error_message, 80),
        ]),
      ),
    );
  }
  return EXIT.OK;
}
