/**
 * The built-in `pgjobs` subcommands, without importing the CLI (src/cli/main.ts runs when
 * imported). main.ts dispatches exactly these: its switch is exhaustive over this list, so tsc
 * fails when a command is added to one and not the other. test/deployment.test.ts checks the
 * Dockerfile's and docker-compose.yml's commands against it; test/cli-operate.test.ts, the help text.
 */
export const COMMANDS = [
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

export type Command = (typeof COMMANDS)[number];

export function isCommand(name: string): name is Command {
  return (COMMANDS as readonly string[]).includes(name);
}
