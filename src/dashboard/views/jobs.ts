/** Jobs, newest first, one row per job, filtered by state, task, queue and time; keyset pages. */
import { html } from "hono/html";
import { BULK_LIMIT } from "../../operate/actions.ts";
import { FINAL_STATES, type JobFilter, type JobRow, LIVE_STATES, PAGE_SIZE } from "../../read/queries.ts";
import { badge, firstLine, type Html, href, when } from "./format.ts";
import { layout, type PageContext } from "./layout.ts";

/** The filter as query-string values (the form's fields, the links' parameters). */
export function filterQuery(filter: JobFilter): Record<string, string | undefined> {
  return {
    state: filter.state,
    task: filter.task,
    queue: filter.queue,
    from: filter.from ? localInput(filter.from) : undefined,
    to: filter.to ? localInput(filter.to) : undefined,
  };
}

/** A UTC time as a datetime-local input shows it. */
function localInput(date: Date): string {
  return date.toISOString().slice(0, 19);
}

function option(value: string, label: string, selected: string | undefined): Html {
  return html`<option value="${value}" ${value === (selected ?? "") ? html`selected` : ""}>${label}</option>`;
}

function timeCell(row: JobRow, now: Date): Html {
  if (!row.in_queue) return html`finished ${when(row.finished_at, now)}`;
  if (row.state === "scheduled" || row.state === "retrying") return html`runs ${when(row.run_at, now)}`;
  if (row.state === "queued") return html`due ${when(row.run_at, now)}`;
  return html`enqueued ${when(row.created_at, now)}`;
}

export function jobsPage(page: PageContext, filter: JobFilter, rows: JobRow[], tasks: string[]): Html {
  const query = filterQuery(filter);
  const older = rows.length === PAGE_SIZE ? rows.at(-1)?.job_id : undefined;
  const content = html`<h1>Jobs</h1>
    <form class="filters" method="get" action="${page.base}/jobs">
      <label
        >State
        <select name="state">
          ${option("", "any", filter.state)}
          <optgroup label="In the queue">
            ${option("in_queue", "all in the queue", filter.state)}
            ${LIVE_STATES.map((state) => option(state, state, filter.state))}
          </optgroup>
          <optgroup label="Ended as">
            ${option("finished", "all that left the queue", filter.state)}
            ${FINAL_STATES.map((state) => option(state, state.replace(/_/g, " "), filter.state))}
          </optgroup>
        </select>
      </label>
      <label
        >Task
        <select name="task">
          ${option("", "any", filter.task)} ${tasks.map((task) => option(task, task, filter.task))}
        </select>
      </label>
      <label>Queue <input name="queue" value="${filter.queue ?? ""}" placeholder="any" size="12" /></label>
      <label>From (UTC) <input type="datetime-local" step="1" name="from" value="${query.from ?? ""}" /></label>
      <label>To (UTC) <input type="datetime-local" step="1" name="to" value="${query.to ?? ""}" /></label>
      <button type="submit">Filter</button>
      <a href="${page.base}/jobs">Reset</a>
    </form>
    <p class="hint">
      Newest first. Jobs in the queue are filtered on when they were enqueued, jobs that left it on when their last
      attempt ended. Failed jobs out of attempts stay in the queue until retried or cancelled.
    </p>
    ${
      rows.length === 0
        ? html`<p class="muted">No job matches.</p>`
        : html`<table class="jobs">
            <thead>
              <tr>
                <th>Job</th>
                <th>Task</th>
                <th>Queue</th>
                <th>State</th>
                <th class="num">Attempts</th>
                <th>When</th>
                <th>Error</th>
              </tr>
            </thead>
            <tbody>
              ${rows.map(
                (row) =>
                  html`<tr>
                    <td><a href="${page.base}/jobs/${row.job_id}">${row.job_id}</a></td>
                    <td><a href="${href(page.base, "/jobs", { ...query, task: row.task })}">${row.task}</a></td>
                    <td>${row.queue ?? html`<span class="muted">—</span>`}</td>
                    <td>${badge(row.state)}</td>
                    <td class="num">${row.attempts} / ${row.max_attempts}</td>
                    <td>${timeCell(row, page.now)}</td>
                    <td class="error">${firstLine(row.error_message)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
    <nav class="pager">
      ${filter.before ? html`<a href="${href(page.base, "/jobs", query)}">← Newest</a>` : html`<span></span>`}
      ${older ? html`<a rel="next" href="${href(page.base, "/jobs", { ...query, before: older })}">Older →</a>` : ""}
    </nav>
    ${
      page.actor && rows.length > 0 && filter.state
        ? html`<form class="bulk" method="post" action="${page.base}/jobs/bulk">
            ${Object.entries(query).map(([key, value]) =>
              value === undefined ? "" : html`<input type="hidden" name="${key}" value="${value}" />`,
            )}
            <span>Every job this filter matches (all pages, newest ${BULK_LIMIT} per click):</span>
            <button
              name="action"
              value="retry"
              data-confirm="Retry every job this filter matches (up to ${BULK_LIMIT})?"
            >
              Retry all
            </button>
            <button
              name="action"
              value="cancel"
              class="danger"
              data-confirm="Cancel every job this filter matches that is in the queue (up to ${BULK_LIMIT})?"
            >
              Cancel all
            </button>
          </form>`
        : ""
    }`;
  return layout(page, "jobs", "Jobs", content);
}
