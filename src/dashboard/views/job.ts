/** One job: what it is, every attempt with its error and stack, its payload and result, and actions. */
import { html } from "hono/html";
import { type Attempt, type AuditRow, FAILURE_STATES, type JobDetail } from "../../read/queries.ts";
import { badge, duration, type Html, prettyJson, utc, when } from "./format.ts";
import { layout, type PageContext } from "./layout.ts";

export interface JobPageOptions {
  /** The payload text to show in the editor (a refused edit comes back as it was typed). */
  editorText?: string;
  audit: AuditRow[];
}

/** The payload the job runs with: the queue's, or the last attempt that kept one. */
export function currentPayload(detail: JobDetail): { value: unknown; kept: boolean } {
  if (detail.live) return { value: detail.live.payload, kept: true };
  const withPayload = [...detail.attempts].reverse().find((attempt) => !attempt.payload_truncated);
  return withPayload ? { value: withPayload.payload, kept: true } : { value: undefined, kept: false };
}

function attemptItem(attempt: Attempt, now: Date): Html {
  return html`<li class="attempt">
    <div class="attempt-head">
      ${badge(attempt.state)} <strong>Attempt ${attempt.attempt}</strong>
      ${attempt.will_retry ? html`<span class="muted">will retry</span>` : ""}
      <span class="muted">
        ${attempt.started_at ? html`started ${when(attempt.started_at, now)}` : "did not start"}
        ${attempt.finished_at ? html` · ended ${when(attempt.finished_at, now)}` : ""} ·
        ${duration(attempt.duration_ms)} ${attempt.worker_id ? html` · on ${attempt.worker_id}` : ""}
      </span>
    </div>
    ${attempt.error_message ? html`<pre class="error">${attempt.error_message}</pre>` : ""}
    ${
      attempt.error_stack
        ? html`<details>
            <summary>Stack</summary>
            <pre class="stack">${attempt.error_stack}</pre>
          </details>`
        : ""
    }
    ${attempt.note ? html`<p class="note">${attempt.note}</p>` : ""}
  </li>`;
}

function actions(page: PageContext, detail: JobDetail, payloadText: string, payloadKept: boolean): Html {
  if (!page.actor) {
    return page.canSignIn
      ? html`<p class="muted">
          Read-only. <a href="${page.base}/login?next=${encodeURIComponent(page.here)}">Sign in</a> to retry or cancel.
        </p>`
      : html`<p class="muted">Read-only: no credential is configured for the dashboard.</p>`;
  }
  const running = detail.state === "running";
  // Open where a person most likely came to act: a job still in the queue, or one that failed.
  const open = detail.live !== undefined || (FAILURE_STATES as readonly string[]).includes(detail.state);
  return html`<details class="actions" ${open ? html`open` : ""}>
    <summary>${detail.live ? "Retry or cancel" : "Run it again"}</summary>
    <div class="action-forms">
      <form method="post" action="${page.base}/jobs/${detail.jobId}/retry" class="retry">
        <label for="payload">Payload to retry with (checked against the task's schema; edit to change it)</label>
        <textarea id="payload" name="payload" rows="8" spellcheck="false">${payloadText}</textarea>
        ${payloadKept ? "" : html`<p class="warn-text">The payload was too large to keep in the history: type the payload to retry with.</p>`}
        <button type="submit" ${running ? html`disabled title="A worker runs it now"` : ""}>
          ${detail.live ? "Retry now" : "Enqueue again"}
        </button>
      </form>
      ${
        detail.live
          ? html`<form method="post" action="${page.base}/jobs/${detail.jobId}/cancel">
              <button
                type="submit"
                class="danger"
                ${running ? html`disabled title="A worker runs it now"` : ""}
                data-confirm="Cancel job ${detail.jobId}? It is removed from the queue (history keeps it)."
              >
                Cancel job
              </button>
            </form>`
          : ""
      }
    </div>
  </details>`;
}

export function jobPage(page: PageContext, detail: JobDetail, options: JobPageOptions): Html {
  const live = detail.live;
  const payload = currentPayload(detail);
  const payloadText = options.editorText ?? prettyJson(payload.value);
  const made = detail.attempts.filter((attempt) => attempt.started_at !== null).length;
  const result = detail.attempts.findLast((attempt) => attempt.state === "succeeded")?.result ?? undefined;
  const content = html`<h1>Job ${detail.jobId} <span class="task">${detail.task}</span> ${badge(detail.state)}</h1>
    <dl class="facts">
      <dt>Where</dt>
      <dd>
        ${live ? "in the queue" : "left the queue"}${live?.queue ? html` · queue <code>${live.queue}</code>` : ""}
      </dd>
      <dt>Attempts</dt>
      <dd>${made} made${live ? html` of ${live.max_attempts} allowed` : ""}</dd>
      ${
        live
          ? html`<dt>Runs</dt>
              <dd>${when(live.run_at, page.now)} <span class="muted">${utc(live.run_at)}</span></dd>
              <dt>Enqueued</dt>
              <dd>${when(live.created_at, page.now)} <span class="muted">${utc(live.created_at)}</span></dd>
              ${
                live.key
                  ? html`<dt>Job key</dt>
                      <dd><code>${live.key}</code></dd>`
                  : ""
              }
              <dt>Priority</dt>
              <dd>${live.priority}</dd>
              ${
                live.locked_by
                  ? html`<dt>Held by</dt>
                      <dd>${live.locked_by} since ${when(live.locked_at, page.now)}</dd>`
                  : ""
              }
              ${
                live.last_error
                  ? html`<dt>Last error</dt>
                      <dd class="error">${live.last_error.split("\n", 1)[0]}</dd>`
                  : ""
              }`
          : ""
      }
    </dl>
    ${actions(page, detail, payloadText, payload.kept)}
    <section>
      <h2>Payload</h2>
      ${payload.kept ? html`<pre class="json">${prettyJson(payload.value)}</pre>` : html`<p class="muted">Not kept (over the history's size cap).</p>`}
    </section>
    ${
      result === undefined
        ? ""
        : html`<section>
            <h2>Result</h2>
            <pre class="json">${prettyJson(result)}</pre>
          </section>`
    }
    <section>
      <h2>Attempts</h2>
      ${
        detail.attempts.length === 0
          ? html`<p class="muted">No attempt yet.</p>`
          : html`<ol class="timeline">
              ${detail.attempts.map((attempt) => attemptItem(attempt, page.now))}
            </ol>`
      }
    </section>
    ${
      options.audit.length > 0
        ? html`<section>
            <h2>Dashboard actions</h2>
            <table>
              <thead>
                <tr>
                  <th>When</th>
                  <th>Who</th>
                  <th>From</th>
                  <th>Action</th>
                  <th>Outcome</th>
                </tr>
              </thead>
              <tbody>
                ${options.audit.map(
                  (row) =>
                    html`<tr>
                      <td>${when(row.acted_at, page.now)}</td>
                      <td>${row.actor}</td>
                      <td>${row.remote_addr ?? "—"}</td>
                      <td>
                        ${row.action.replace("_", " ")}${row.job_ids.length > 1 ? ` (${row.job_ids.length} jobs)` : ""}
                      </td>
                      <td><code>${JSON.stringify(outcomeFor(row.outcome, detail.jobId))}</code></td>
                    </tr>`,
                )}
              </tbody>
            </table>
          </section>`
        : ""
    }`;
  return layout(page, "jobs", `Job ${detail.jobId}`, content);
}

function outcomeFor(outcome: unknown, jobId: string): unknown {
  if (outcome && typeof outcome === "object" && jobId in outcome) return (outcome as Record<string, unknown>)[jobId];
  return outcome;
}
