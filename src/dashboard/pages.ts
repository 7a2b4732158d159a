/** The read-only pages: overview, jobs, one job, tasks, cron, workers. */
import type { Context, Hono } from "hono";
import { cronItemStatus } from "../read/cron-schedule.ts";
import type { DashboardDeps, DashboardEnv } from "./context.ts";
import { badRequest, pageContext } from "./context.ts";
import { FilterError, readJobFilter } from "../read/job-filter.ts";
import {
  actionsOnJob,
  cronStatus,
  emptySummary,
  getJob,
  type JobFilter,
  listJobs,
  listWorkers,
  queueCounts,
  recentFailures,
  registeredTaskNames,
  summarizeQueues,
  taskSummary,
  throughput,
} from "../read/queries.ts";
import { cronPage } from "./views/cron.ts";
import { jobPage } from "./views/job.ts";
import { jobsPage } from "./views/jobs.ts";
import { messagePage } from "./views/layout.ts";
import { CHART_WINDOWS, overviewPage } from "./views/overview.ts";
import { TASK_WINDOWS, tasksPage } from "./views/tasks.ts";
import { workersPage } from "./views/workers.ts";

export const DEFAULT_CHART_HOURS = 3;
export const DEFAULT_TASK_HOURS = 1;

/** A choice from a fixed list, or the default. */
function choose<T extends number>(value: string | undefined, allowed: readonly T[], fallback: T): T {
  const wanted = Number(value);
  return allowed.find((choice) => choice === wanted) ?? fallback;
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
    const alive = workers.filter((worker) => worker.state === "running" || worker.state === "stopping");
    return c.html(
      overviewPage(pageContext(c, deps), {
        hours,
        throughput: points,
        queues: summarizeQueues(counts),
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
