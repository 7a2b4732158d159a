/** The read-only pages: overview, jobs, one job, tasks, cron, workers. */
import type { Context, Hono } from "hono";
import { cronItemStatus } from "./cron-schedule.ts";
import type { DashboardDeps, DashboardEnv } from "./context.ts";
import { badRequest, pageContext } from "./context.ts";
import {
  actionsOnJob,
  cronStatus,
  emptySummary,
  getJob,
  JOB_STATE_FILTERS,
  type JobFilter,
  type JobStateFilter,
  listJobs,
  listWorkers,
  queueCounts,
  recentFailures,
  registeredTaskNames,
  taskSummary,
  throughput,
} from "./queries.ts";
import { cronPage } from "./views/cron.ts";
import { jobPage } from "./views/job.ts";
import { jobsPage } from "./views/jobs.ts";
import { messagePage } from "./views/layout.ts";
import { CHART_WINDOWS, overviewPage, type QueueSummary } from "./views/overview.ts";
import { TASK_WINDOWS, tasksPage } from "./views/tasks.ts";
import { workersPage } from "./views/workers.ts";

export const DEFAULT_CHART_HOURS = 3;
export const DEFAULT_TASK_HOURS = 1;

/** A choice from a fixed list, or the default. */
function choose<T extends number>(value: string | undefined, allowed: readonly T[], fallback: T): T {
  const wanted = Number(value);
  return allowed.find((choice) => choice === wanted) ?? fallback;
}

/** A datetime-local value (no zone) is read as UTC, as the form says. */
function utcInput(value: string | undefined, name: string): Date | undefined {
  if (!value) return undefined;
  const date = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(value) ? value : `${value}Z`);
  if (Number.isNaN(date.getTime())) throw new FilterError(`"${name}" is not a date and time: ${value}`);
  return date;
}

export class FilterError extends Error {}

/** Reads the jobs filter from a query string or a form; every value allowlisted or typed. */
export function readJobFilter(get: (name: string) => string | undefined): JobFilter {
  const state = get("state") || undefined;
  if (state !== undefined && !(JOB_STATE_FILTERS as readonly string[]).includes(state)) {
    throw new FilterError(`Unknown state "${state}". Choose one of: ${JOB_STATE_FILTERS.join(", ")}.`);
  }
  const before = get("before") || undefined;
  if (before !== undefined && !/^\d{1,19}$/.test(before)) throw new FilterError(`"before" must be a job id.`);
  const task = get("task")?.trim() || undefined;
  const queue = get("queue")?.trim() || undefined;
  if ((task?.length ?? 0) > 128 || (queue?.length ?? 0) > 128)
    throw new FilterError("Task and queue names are at most 128 characters.");
  return {
    state: state as JobStateFilter | undefined,
    task,
    queue,
    from: utcInput(get("from"), "from"),
    to: utcInput(get("to"), "to"),
    before,
  };
}

export function pageRoutes(app: Hono<DashboardEnv>, deps: DashboardDeps): void {
  const { db } = deps;

  app.get("/", async (c) => {
    const hours = choose(c.req.query("hours"), CHART_WINDOWS, DEFAULT_CHART_HOURS);
    const [points, counts, workers, failures] = await Promise.all([
      throughput(db, hours),
      queueCounts(db),
      listWorkers(db),
      recentFailures(db),
    ]);
    const queues = new Map<string, QueueSummary>();
    for (const row of counts) {
      const key = row.queue ?? "";
      const queue = queues.get(key) ?? {
        queue: row.queue,
        waiting: 0,
        scheduled: 0,
        locked: 0,
        retrying: 0,
        failed: 0,
        oldestWaiting: null,
      };
      queue[row.state] += row.jobs;
      if (
        row.state === "waiting" &&
        row.oldest_run_at &&
        (!queue.oldestWaiting || row.oldest_run_at < queue.oldestWaiting)
      ) {
        queue.oldestWaiting = row.oldest_run_at;
      }
      queues.set(key, queue);
    }
    const alive = workers.filter((worker) => worker.state === "running" || worker.state === "stopping");
    return c.html(
      overviewPage(pageContext(c, deps), {
        hours,
        throughput: points,
        queues: [...queues.values()].sort((a, b) => (a.queue ?? "").localeCompare(b.queue ?? "")),
        workers: alive,
        failures,
      }),
    );
  });

  app.get("/jobs", async (c) => {
    let filter: JobFilter;
    try {
      filter = readJobFilter((name) => c.req.query(name));
    } catch (error) {
      if (error instanceof FilterError) return badRequest(c, deps, error.message);
      throw error;
    }
    const [rows, tasks] = await Promise.all([listJobs(db, filter), taskNames(deps)]);
    return c.html(jobsPage(pageContext(c, deps), filter, rows, tasks));
  });

  app.get("/jobs/:id{[0-9]{1,19}}", (c) => renderJob(c, deps, c.req.param("id")));

  app.get("/tasks", async (c) => {
    const hours = choose(c.req.query("hours"), TASK_WINDOWS, DEFAULT_TASK_HOURS);
    const [{ since, rows }, names] = await Promise.all([taskSummary(db, hours), taskNames(deps)]);
    // Tasks with no attempt in the window are listed too, with zeros.
    for (const task of names) if (!rows.some((row) => row.task === task)) rows.push(emptySummary(task));
    rows.sort((a, b) => a.task.localeCompare(b.task));
    return c.html(tasksPage(pageContext(c, deps), hours, since, rows));
  });

  app.get("/cron", async (c) => {
    const statuses = await cronStatus(db);
    const now = new Date();
    const items = deps.cronItems.map((item) => cronItemStatus(item, statuses.get(item.identifier), now));
    return c.html(cronPage(pageContext(c, deps), items));
  });

  app.get("/workers", async (c) => c.html(workersPage(pageContext(c, deps), await listWorkers(db))));
}

/** The job page, with a notice and the typed payload when an edit was refused. */
export async function renderJob(
  c: Context<DashboardEnv>,
  deps: DashboardDeps,
  jobId: string,
  refused?: { text: string; problem: string },
): Promise<Response> {
  const [detail, audit] = await Promise.all([getJob(deps.db, jobId), actionsOnJob(deps.db, jobId)]);
  const page = pageContext(c, deps);
  if (!detail) {
    return c.html(messagePage(page, "No such job", `Job ${jobId} is neither in the queue nor in the history.`), 404);
  }
  if (refused) page.notice = { kind: "error", text: refused.problem };
  return c.html(jobPage(page, detail, { audit, editorText: refused?.text }), refused ? 422 : 200);
}

/** Registered task names and the app's own, for filters and the tasks page. */
async function taskNames(deps: DashboardDeps): Promise<string[]> {
  const registered = await registeredTaskNames(deps.db);
  return [...new Set([...registered, ...deps.tasks.map((task) => task.name)])].sort();
}
