/** The first page: throughput, the queues, live workers, the latest failures. */
import { html } from "hono/html";
import type { FailureRow, QueueSummary, ThroughputPoint, WorkerRow } from "../../read/queries.ts";
import { badge, count, firstLine, type Html, href, relative, when } from "./format.ts";
import { layout, type PageContext } from "./layout.ts";

export const CHART_WINDOWS = [1, 3, 6, 12, 24] as const;

export interface OverviewData {
  hours: number;
  throughput: ThroughputPoint[];
  queues: QueueSummary[];
  workers: WorkerRow[];
  failures: FailureRow[];
}

export function overviewPage(page: PageContext, data: OverviewData): Html {
  const succeeded = data.throughput.reduce((sum, point) => sum + point.succeeded, 0);
  const failed = data.throughput.reduce((sum, point) => sum + point.failed, 0);
  const waiting = data.queues.reduce((sum, queue) => sum + queue.waiting, 0);
  const series = {
    t: data.throughput.map((point) => point.minute.getTime() / 1000),
    succeeded: data.throughput.map((point) => point.succeeded),
    failed: data.throughput.map((point) => point.failed),
  };
  const content = html`<h1>Overview</h1>
    <section class="cards">
      <div class="card">
        <span class="label">Succeeded (${data.hours} h)</span><span class="value">${count(succeeded)}</span>
      </div>
      <div class="card">
        <span class="label">Failed attempts (${data.hours} h)</span
        ><span class="value ${failed > 0 ? "bad" : ""}">${count(failed)}</span>
      </div>
      <div class="card"><span class="label">Waiting now</span><span class="value">${count(waiting)}</span></div>
      <div class="card">
        <span class="label">Workers alive</span><span class="value">${count(data.workers.length)}</span>
      </div>
    </section>
    <section>
      <div class="section-head">
        <h2>Attempts ended per minute</h2>
        <div class="choices">
          ${CHART_WINDOWS.map(
            (hours) =>
              html`<a
                href="${href(page.base, "/", { hours: String(hours) })}"
                ${hours === data.hours ? html`aria-current="true"` : ""}
                >${hours} h</a
              >`,
          )}
        </div>
      </div>
      <div id="throughput-chart" class="chart" data-series="${JSON.stringify(series)}">
        <noscript>The chart needs JavaScript; the totals above do not.</noscript>
      </div>
    </section>
    <div class="columns">
      <section>
        <h2>Queues</h2>
        ${
          data.queues.length === 0
            ? html`<p class="muted">The queue is empty.</p>`
            : html`<table>
                <thead>
                  <tr>
                    <th>Queue</th>
                    <th class="num">Waiting</th>
                    <th>Oldest waiting</th>
                    <th class="num">Scheduled</th>
                    <th class="num">Held by workers</th>
                    <th class="num">Retrying</th>
                    <th class="num">Out of attempts</th>
                  </tr>
                </thead>
                <tbody>
                  ${data.queues.map(
                    (queue) =>
                      html`<tr>
                        <td>
                          <a href="${href(page.base, "/jobs", { state: "in_queue", queue: queue.queue ?? undefined })}"
                            >${queue.queue ?? "(none)"}</a
                          >
                        </td>
                        <td class="num">${count(queue.waiting)}</td>
                        <td>
                          ${queue.oldestWaiting ? html`${when(queue.oldestWaiting, page.now)}` : html`<span class="muted">—</span>`}
                        </td>
                        <td class="num">${count(queue.scheduled)}</td>
                        <td class="num">${count(queue.locked)}</td>
                        <td class="num">${count(queue.retrying)}</td>
                        <td class="num ${queue.failed > 0 ? "bad" : ""}">${count(queue.failed)}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
      </section>
      <section>
        <h2>Workers alive</h2>
        ${
          data.workers.length === 0
            ? html`<p class="warn-text">No worker is heartbeating: jobs are not being run.</p>`
            : html`<table>
                <thead>
                  <tr>
                    <th>Worker</th>
                    <th>Host</th>
                    <th>Heartbeat</th>
                    <th class="num">Running</th>
                  </tr>
                </thead>
                <tbody>
                  ${data.workers.map(
                    (worker) =>
                      html`<tr>
                        <td><a href="${page.base}/workers#${worker.id}">${worker.id}</a></td>
                        <td>${worker.host} (pid ${worker.pid})</td>
                        <td>${relative(new Date(page.now.getTime() - worker.seconds_silent * 1000), page.now)}</td>
                        <td class="num">${worker.running.length} / ${worker.concurrency}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
      </section>
    </div>
    <section>
      <div class="section-head">
        <h2>Recent failures</h2>
        <a href="${href(page.base, "/jobs", { state: "failed" })}">all failed jobs →</a>
      </div>
      ${
        data.failures.length === 0
          ? html`<p class="muted">No failed attempts.</p>`
          : html`<table>
              <thead>
                <tr>
                  <th>Job</th>
                  <th>Task</th>
                  <th>Attempt</th>
                  <th>State</th>
                  <th>Error</th>
                  <th>When</th>
                </tr>
              </thead>
              <tbody>
                ${data.failures.map(
                  (failure) =>
                    html`<tr>
                      <td><a href="${page.base}/jobs/${failure.job_id}">${failure.job_id}</a></td>
                      <td>${failure.task}</td>
                      <td>
                        ${failure.attempt}${failure.will_retry ? html` <span class="muted">(will retry)</span>` : ""}
                      </td>
                      <td>${badge(failure.state)}</td>
                      <td class="error">${firstLine(failure.error_message)}</td>
                      <td>${when(failure.finished_at, page.now)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
    </section>`;
  return layout(page, "overview", "Overview", content);
}
