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

export function createLogger(config: Pick<Config, "logLevel" | "logFormat">): Logger {
  const usePretty = config.logFormat === "pretty" || (config.logFormat === "auto" && process.stdout.isTTY === true);
  const options = { name: "pgjobs", level: config.logLevel };
  // pino-pretty as a synchronous stream (not a transport thread) so the last lines before an
  // exit are never lost.
  return usePretty
    ? pino(options, pretty({ colorize: true, sync: true, ignore: "pid,hostname" }))
    : pino(options, pino.destination({ sync: true }));
}

const graphileToPino: Record<GraphileLogLevel, "error" | "warn" | "info" | "debug"> = {
  error: "error",
  warning: "warn",
  info: "info",
  debug: "debug",
};

/** Adapts pino to graphile-worker's Logger, keeping its scope (worker id, task, job id) as fields. */
export function toGraphileLogger(logger: Logger): GraphileLogger {
  return new GraphileLogger((scope) => {
    const scoped = logger.child({ component: "graphile-worker", ...scope });
    return (level, message, meta) => {
      scoped[graphileToPino[level]](meta ?? {}, message);
    };
  });
}
