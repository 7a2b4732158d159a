/**
 * Structured logs through pino: pretty for a person at a terminal, JSON lines for a log
 * collector. graphile-worker's own messages go through the same logger (see toGraphileLogger),
 * so one stream holds the whole story of a job.
 */
import { Logger as GraphileLogger, type LogLevel as GraphileLogLevel } from "graphile-worker";
import { type Logger, pino } from "pino";
import pretty from "pino-pretty";
import type { Config } from "./config.ts";

export type { Logger } from "pino";

/**
 * `to`: the file descriptor the lines go to. The CLI logs to standard error (2), so its standard
 * output holds only what a command prints (one JSON document with --json); a library logger
 * defaults to standard output.
 */
export function createLogger(config: Pick<Config, "logLevel" | "logFormat">, to: 1 | 2 = 1): Logger {
  const terminal = (to === 2 ? process.stderr : process.stdout).isTTY === true;
  const usePretty = config.logFormat === "pretty" || (config.logFormat === "auto" && terminal);
  const options = { name: "pgjobs", level: config.logLevel };
  // pino-pretty as a synchronous stream (not a transport thread) so the last lines before an
  // exit are never lost.
  return usePretty
    ? pino(options, pretty({ colorize: true, sync: true, ignore: "pid,hostname", destination: to }))
    : pino(options, pino.destination({ sync: true, dest: to }));
}

const graphileToPino: Record<GraphileLogLevel, "error" | "warn" | "info" | "debug"> = {
  error: "error",
  warning: "warn",
  info: "info",
  debug: "debug",
};

/**
 * Adapts pino to graphile-worker's Logger, keeping its scope (worker id, task, job id) as fields.
 * Its per-job lines ("Completed task …", "Failed task …") carry the whole job, payload included,
 * and the error's stack: they go to debug with the job reduced to its id and task. The runner
 * logs each failure itself, once, with what to do next. Its other lines keep their level, but
 * whatever job they carry (`job`, `jobs`, `specs`, an event's `payload`) is reduced to ids too:
 * no payload reaches the log above debug.
 */
export function toGraphileLogger(logger: Logger): GraphileLogger {
  return new GraphileLogger((scope) => {
    const scoped = logger.child({ component: "graphile-worker", ...scope });
    return (level, message, meta) => {
      if (meta && ("success" in meta || "failure" in meta)) {
        if (!scoped.isLevelEnabled("debug")) return;
        const { job } = meta as { job?: unknown };
        scoped.debug(jobFields(job), message.split("\n")[0]);
        return;
      }
      scoped[graphileToPino[level]](meta ? withoutPayloads(meta) : {}, message);
    };
  });
}

/** A job as log fields: its id and task, never its payload. */
function jobFields(job: unknown): { jobId?: unknown; task?: unknown } {
  if (typeof job !== "object" || job === null) return {};
  const { id, task_identifier } = job as { id?: unknown; task_identifier?: unknown };
  return { jobId: id, task: task_identifier };
}

/** graphile-worker's log metadata with every job in it reduced to id and task. */
function withoutPayloads(meta: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(meta)) {
    if (key === "job") {
      Object.assign(fields, jobFields(value));
    } else if (key === "jobs" && Array.isArray(value)) {
      fields.jobIds = value.map((job) => jobFields(job).jobId);
    } else if (key === "specs" && Array.isArray(value)) {
      fields.jobIds = value.map((spec) => jobFields((spec as { job?: unknown } | null)?.job).jobId);
    } else if (key === "payload") {
      // An event's payload (safeEmit): the job, the worker, the context. Only the job's id is kept.
      const { job } = (value ?? {}) as { job?: unknown };
      Object.assign(fields, jobFields(job));
    } else {
      fields[key] = value;
    }
  }
  return fields;
}
