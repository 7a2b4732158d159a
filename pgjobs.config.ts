// The credits app's pgjobs configuration: its tasks, its schedule, its migrations and the
// `pgjobs credits` command. The `pgjobs` CLI finds this file from any folder below this one.
import { creditsCommand } from "./src/app/cli/credits-command.ts";
import { tasks } from "./src/app/tasks/index.ts";
import { defineConfig } from "./src/index.ts";

export default defineConfig({
  tasks,
  crontab: "crontab",
  migrations: "migrations",
  commands: { credits: creditsCommand },
});
