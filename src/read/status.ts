/**
 * The state of the deployment in one read (`pgjobs status`, the dashboard's overview numbers):
 * each queue's jobs by state and its oldest waiting job, and the workers alive.
 */
import { listWorkers, queueCounts, type QueueSummary, summarizeQueues, type Db } from "./queries.ts";

export interface StatusReport {
  at: Date;
  queues: QueueSummary[];
  totals: Omit<QueueSummary, "queue">;
  workers: {
    alive: number;
    /** Task bodies running now, over all live workers. */
    running: number;
    /** Seconds since the freshest heartbeat of a live worker; null with none alive. */
    newestHeartbeatSecondsAgo: number | null;
  };
}

export async function readStatus(db: Db): Promise<StatusReport> {
  const [counts, workers] = await Promise.all([queueCounts(db), listWorkers(db)]);
  const queues = summarizeQueues(counts);
  const totals = { waiting: 0, scheduled: 0, locked: 0, retrying: 0, failed: 0, oldestWaiting: null as Date | null };
  for (const queue of queues) {
    totals.waiting += queue.waiting;
    totals.scheduled += queue.scheduled;
    totals.locked += queue.locked;
    totals.retrying += queue.retrying;
    totals.failed += queue.failed;
    if (queue.oldestWaiting && (!totals.oldestWaiting || queue.oldestWaiting < totals.oldestWaiting)) {
      totals.oldestWaiting = queue.oldestWaiting;
    }
  }
  const alive = workers.filter((worker) => worker.state === "running" || worker.state === "stopping");
  return {
    at: new Date(),
    queues,
    totals,
    workers: {
      alive: alive.length,
      running: alive.reduce((sum, worker) => sum + worker.running.length, 0),
      newestHeartbeatSecondsAgo: alive.length === 0 ? null : Math.min(...alive.map((worker) => worker.seconds_silent)),
    },
  };
}
