/**
 * pgjobs: background and scheduled jobs on PostgreSQL alone. The one door of the package: an
 * app imports from here ("pgjobs") and, in its tests, from "pgjobs/testing".
 *
 * @example
 * import { createPgJobs, defineTask } from "pgjobs";
 * export const hello = defineTask({ name: "app__hello", payload: z.object({ name: z.string() }), run: … });
 * export const jobs = createPgJobs({ tasks: [hello] as const });
 */
export { createPgJobs, type JobOf, type PgJobs, type PgJobsOptions } from "./client.ts";
export { type AppCommand, defineConfig, type PgJobsConfig } from "./project.ts";
export {
  defineTask,
  defineTaskFor,
  type TaskContext,
  type TaskDefinition,
  type TaskOptions,
} from "./tasks/define-task.ts";
export {
  type PayloadOf,
  type ResultOf,
  type TaskList,
  type TaskNameOf,
  TaskRegistry,
  UnknownTaskError,
} from "./tasks/task-registry.ts";
export { PermanentJobError, TaskTimeoutError, JobNotHeldError } from "./runner/task-list.ts";
export {
  BatchJobError,
  InvalidPayloadError,
  type EnqueuedJob,
  type EnqueueOptions,
  type JobSpec,
} from "./enqueue/enqueue.ts";
export { JobActionError, type RetryOutcome } from "./enqueue/job-actions.ts";
export {
  getJobOutcome,
  JobNotFoundError,
  type JobOutcome,
  JobResultTimeoutError,
  waitForResult,
  type WaitOptions,
} from "./history/wait-for-result.ts";
export { type PgjobsWorker, type WorkerExit, type WorkerSettings } from "./runner/worker.ts";
// Running under the plain graphile-worker CLI: `extends: [makePgjobsPreset({ tasks })]` in graphile.config.ts.
export { makePgjobsPreset, type PgjobsPresetOptions } from "./runner/preset.ts";
export { createDb, createPool } from "./db/connection.ts";
export type { Database as PgjobsDatabase, JobRunState } from "./db/schema.ts";
export { createLogger, type Logger } from "./logger.ts";
// Built-in tasks an app may add to its own list.
export { pingTask } from "./tasks/pgjobs/ping.ts";
export { pruneHistoryTask } from "./tasks/pgjobs/prune-history.ts";
export { PGJOBS_VERSION } from "./version.ts";
