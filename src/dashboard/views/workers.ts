/** Workers: heartbeats, what each runs and since when, why the stopped ones stopped. */
import { html } from "hono/html";
import type { WorkerRow } from "../../read/queries.ts";
import { badge, type Html, relative, utc, when } from "./format.ts";
import { layout, type PageContext } from "./layout.ts";

export function workersPage(page: PageContext, workers: WorkerRow[]): Html {
  const content = html`<h1>Workers</h1>
    <p class="hint">
      Workers heartbeat every few seconds; one silent past the liveness bound is reaped by the others (state lost) and
      its jobs run again. Stopped and lost workers stay listed for 7 days.
    </p>
    ${
      workers.length === 0
        ? html`<p class="muted">No worker has registered.</p>`
        : html`<table class="workers">
            <thead>
              <tr>
                <th>Worker</th>
                <th>State</th>
                <th>Heartbeat</th>
                <th>Started</th>
                <th>Running now</th>
              </tr>
            </thead>
            <tbody>
              ${workers.map(
                (worker) =>
                  html`<tr id="${worker.id}">
                    <td>
                      <strong>${worker.id}</strong><br /><span class="muted"
                        >${worker.host} · pid ${worker.pid} · v${worker.version} · ${worker.concurrency} slots</span
                      >
                    </td>
                    <td>
                      ${badge(worker.state)}${worker.stop_reason ? html`<br /><span class="muted">${worker.stop_reason}</span>` : ""}
                    </td>
                    <td title="${utc(worker.last_seen_at)}">
                      ${relative(new Date(page.now.getTime() - worker.seconds_silent * 1000), page.now)}
                    </td>
                    <td>
                      ${when(worker.started_at, page.now)}${worker.stopped_at ? html`<br /><span class="muted">stopped ${when(worker.stopped_at, page.now)}</span>` : ""}
                    </td>
                    <td>
                      ${
                        worker.running.length === 0
                          ? html`<span class="muted">idle</span>`
                          : html`<ul class="plain">
                              ${worker.running.map(
                                (run) =>
                                  html`<li>
                                    <a href="${page.base}/jobs/${run.job_id}">job ${run.job_id}</a> ${run.task} since
                                    ${when(run.started_at, page.now)}
                                  </li>`,
                              )}
                            </ul>`
                      }
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }`;
  return layout(page, "workers", "Workers", content);
}
