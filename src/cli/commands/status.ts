/**
 * `pgjobs status`, `pgjobs workers`, `pgjobs cron`: what the deployment is doing now, from the
 * read side the dashboard uses (src/read).
 */
import { cronItemStatus, parseCronItems } from "../../read/cron-schedule.ts";
import { count, relative, utc } from "../../read/format.ts";
import { cronStatus, listWorkers } from "../../read/queries.ts";
import { readStatus } from "../../read/status.ts";
import { type CliContext, withDatabase } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { print, printJson, table } from "../output.ts";

/** "3 min ago (2026-11-25 10:00:00 UTC)" */
function ago(date: Date | null, now: Date): string {
  return date ? `${relative(date, now)} (${utc(date)})` : "—";
}

export async function statusCommand(cli: CliContext, args: { json: boolean }): Promise<number> {
  const report = await withDatabase(cli, "pgjobs status", (session) => readStatus(session.db));
  if (args.json) {
    printJson(report);
    return EXIT.OK;
  }
  const now = report.at;
  if (report.queues.length === 0) {
    print("The queue is empty: no job is waiting, scheduled, running or dead.");
  } else {
    const row = (name: string, q: (typeof report.queues)[number] | typeof report.totals) => [
      name,
      count(q.waiting),
      count(q.scheduled),
      count(q.locked),
      count(q.retrying),
      count(q.failed),
      ago(q.oldestWaiting, now),
    ];
    const rows = report.queues.map((queue) => row(queue.queue ?? "(no queue)", queue));
    if (report.queues.length > 1) rows.push(row("all", report.totals));
    print(
      table(
        [
          { title: "QUEUE" },
          { title: "WAITING", right: true },
          { title: "SCHEDULED", right: true },
          { title: "RUNNING", right: true },
          { title: "RETRYING", right: true },
          { title: "DEAD", right: true },
          { title: "OLDEST WAITING" },
        ],
        rows,
      ),
    );
  }
  const { workers } = report;
  print(
    workers.alive === 0
      ? "\nWorkers: none alive. Nothing will run until one starts (`pgjobs worker`); `pgjobs workers` lists the stopped ones."
      : `\nWorkers: ${workers.alive} alive, running ${workers.running} job(s); freshest heartbeat ${Math.round(workers.newestHeartbeatSecondsAgo ?? 0)} s ago.`,
  );
  if (report.totals.failed > 0) {
    print(
      `Dead jobs: ${count(report.totals.failed)} out of attempts, waiting for a person: \`pgjobs failures\` lists them.`,
    );
  }
  return EXIT.OK;
}

export async function workersCommand(cli: CliContext, args: { json: boolean }): Promise<number> {
  const workers = await withDatabase(cli, "pgjobs workers", (session) => listWorkers(session.db));
  if (args.json) {
    printJson(workers);
    return EXIT.OK;
  }
  if (workers.length === 0) {
    print("No worker has registered in this database yet: start one with `pgjobs worker`.");
    return EXIT.OK;
  }
  const now = new Date();
  print(
    table(
      [
        { title: "WORKER" },
        { title: "STATE" },
        { title: "HOST:PID" },
        { title: "HEARTBEAT" },
        { title: "STARTED" },
        { title: "RUNNING NOW" },
      ],
      workers.map((worker) => [
        worker.id,
        worker.state === "stopped" && worker.stop_reason ? `stopped (${worker.stop_reason})` : worker.state,
        `${worker.host}:${worker.pid}`,
        `${Math.round(worker.seconds_silent)} s ago`,
        ago(worker.started_at, now),
        worker.running.length === 0
          ? worker.state === "running"
            ? "idle"
            : "—"
          : worker.running
              .map((job) => `job ${job.job_id} (${job.task}) since ${relative(job.started_at, now)}`)
              .join("; "),
      ]),
    ),
  );
  return EXIT.OK;
}

export async function cronCommand(cli: CliContext, args: { json: boolean }): Promise<number> {
  const items = parseCronItems(cli.project.crontab);
  if (items.length === 0) {
    if (args.json) printJson([]);
    else print("No crontab items: this app's pgjobs.config.ts names no crontab, or it lists nothing.");
    return EXIT.OK;
  }
  const statuses = await withDatabase(cli, "pgjobs cron", (session) => cronStatus(session.db));
  const now = new Date();
  const rows = items.map((item) => cronItemStatus(item, statuses.get(item.identifier), now));
  if (args.json) {
    printJson(rows);
    return EXIT.OK;
  }
  print(
    table(
      [
        { title: "ITEM" },
        { title: "SCHEDULE" },
        { title: "LAST RUN" },
        { title: "NEXT RUN" },
        { title: "LATEST TICK" },
      ],
      rows.map((row) => [
        row.identifier === row.task ? row.task : `${row.identifier} (${row.task})`,
        `${row.expression}: ${row.words}`,
        row.lastExecution ? ago(row.lastExecution, now) : "never",
        ago(row.nextTick, now),
        row.verdict === "unknown" ? "unknown (no worker has loaded it)" : row.verdict,
      ]),
    ),
  );
  return EXIT.OK;
}
