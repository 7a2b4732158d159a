/** Per task over a window: attempts by how they ended, success rate, p50/p95 duration. */
import { html } from "hono/html";
import type { TaskSummaryRow } from "../../read/queries.ts";
import { count, duration, type Html, href, utc } from "./format.ts";
import { layout, type PageContext } from "./layout.ts";

export const TASK_WINDOWS = [1, 6, 24, 168] as const;

function windowLabel(hours: number): string {
  return hours % 24 === 0 && hours > 24 ? `${hours / 24} d` : `${hours} h`;
}

export function tasksPage(page: PageContext, hours: number, since: Date, rows: TaskSummaryRow[]): Html {
  const cell = (value: number, task: string, state: string, bad = false) =>
    value === 0
      ? html`<td class="num muted">0</td>`
      : html`<td class="num ${bad ? "bad" : ""}">
          <a href="${href(page.base, "/jobs", { task, state })}">${count(value)}</a>
        </td>`;
  const content = html`<div class="section-head">
      <h1>Tasks</h1>
      <div class="choices">
        ${TASK_WINDOWS.map(
          (choice) =>
            html`<a
              href="${href(page.base, "/tasks", { hours: String(choice) })}"
              ${choice === hours ? html`aria-current="true"` : ""}
              >${windowLabel(choice)}</a
            >`,
        )}
      </div>
    </div>
    <p class="hint">
      Attempts that ended since ${utc(since)} (at least the last ${windowLabel(hours)}, in whole hours), and those
      running now. p50 and p95 are durations of the attempts that ran, read from a histogram (within 3%).
    </p>
    <table>
      <thead>
        <tr>
          <th>Task</th>
          <th class="num">Attempts</th>
          <th class="num">Succeeded</th>
          <th class="num">Failed</th>
          <th class="num">Rejected</th>
          <th class="num">Timed out</th>
          <th class="num">Abandoned</th>
          <th class="num">Cancelled</th>
          <th class="num">Running</th>
          <th class="num">Success rate</th>
          <th class="num">p50</th>
          <th class="num">p95</th>
        </tr>
      </thead>
      <tbody>
        ${rows.map(
          (row) =>
            html`<tr>
              <td><a href="${href(page.base, "/jobs", { task: row.task })}">${row.task}</a></td>
              <td class="num">${count(row.attempts)}</td>
              ${cell(row.succeeded, row.task, "succeeded")} ${cell(row.failed, row.task, "failed", true)}
              ${cell(row.rejected, row.task, "rejected", true)} ${cell(row.timed_out, row.task, "timed_out", true)}
              ${cell(row.abandoned, row.task, "abandoned", true)} ${cell(row.cancelled, row.task, "cancelled")}
              ${cell(row.running, row.task, "running")}
              <td class="num">${row.success_rate === null ? "—" : `${(row.success_rate * 100).toFixed(1)} %`}</td>
              <td class="num">${duration(row.p50_ms)}</td>
              <td class="num">${duration(row.p95_ms)}</td>
            </tr>`,
        )}
      </tbody>
    </table>`;
  return layout(page, "tasks", "Tasks", content);
}
