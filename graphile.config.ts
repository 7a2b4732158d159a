// The credits app under the plain graphile-worker CLI: `npm run graphile-worker` (or, where the
// `node` on PATH is ≥ 22.18, `npx graphile-worker`) from this folder, after `pgjobs migrate`.
// The same tasks, history, heartbeats and stops as `pgjobs worker`; see the README, "Running
// under the graphile-worker CLI". DATABASE_URL is graphile-worker's default connection.
import path from "node:path";
import { tasks } from "./src/app/tasks/index.ts";
import { makePgjobsPreset } from "./src/index.ts";

const preset: GraphileConfig.Preset = {
  extends: [makePgjobsPreset({ tasks, migrations: path.join(import.meta.dirname, "migrations") })],
  worker: {
    concurrentJobs: 4,
    // The app's schedule, the same file `pgjobs worker` reads (pgjobs.config.ts).
    crontabFile: path.join(import.meta.dirname, "crontab"),
  },
};

export default preset;
