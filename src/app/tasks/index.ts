/**
 * The credits app's task list: its own tasks, and the pgjobs built-ins it opts into (history
 * retention, the ping smoke test). The worker, enqueue's types and the CLI all come from it.
 */
import { createPgJobs, pingTask, pruneHistoryTask } from "../../index.ts";
import { expireHoldTask } from "./expire-hold.ts";
import { expireHoldsTask } from "./expire-holds.ts";
import { expiryTimerTask } from "./expiry-timer.ts";

export const tasks = [pingTask, pruneHistoryTask, expireHoldsTask, expiryTimerTask, expireHoldTask] as const;

/** pgjobs for the credits app: `jobs.enqueue(trx, "credits__expire_hold", { holdId })` is type-checked. */
export const jobs = createPgJobs({ tasks });
