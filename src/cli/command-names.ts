/**
 * The `pgjobs` subcommands, for whoever checks that a command exists (a deployment's compose
 * test, the help text) without running the CLI. main.ts dispatches exactly these.
 */
export const COMMAND_NAMES = [
  "worker",
  "migrate",
  "dashboard",
  "health",
  "status",
  "jobs",
  "job",
  "result",
  "failures",
  "retry",
  "cancel",
  "cron",
  "workers",
  "prune",
  "add",
  "run",
] as const;

export type CommandName = (typeof COMMAND_NAMES)[number];
