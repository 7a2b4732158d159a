/** The crontab: each item's schedule in words, last and next tick, whether the last one fired. */
import { html } from "hono/html";
import type { CronItemStatus } from "../../read/cron-schedule.ts";
import { badge, type Html, prettyJson, utc, when } from "./format.ts";
import { layout, type PageContext } from "./layout.ts";

const VERDICT_TEXT: Record<CronItemStatus["verdict"], string> = {
  fired: "the last tick fired",
  due: "due this minute",
  missed: "the last tick did not fire (no worker was running?)",
  new: "added after the last tick",
  unknown: "no worker has loaded this item yet",
};

export function cronPage(page: PageContext, items: CronItemStatus[]): Html {
  const content = html`<h1>Cron</h1>
    <p class="hint">Schedules are in UTC, as the workers run them. A tick fires once however many workers run.</p>
    ${
      items.length === 0
        ? html`<p class="muted">The crontab has no items.</p>`
        : html`<table class="cron">
            <thead>
              <tr>
                <th>Item</th>
                <th>Schedule (UTC)</th>
                <th>Last tick</th>
                <th>Next run</th>
                <th></th>
              </tr>
            </thead>
            <tbody>
              ${items.map(
                (item) =>
                  html`<tr id="${item.identifier}">
                    <td>
                      <strong>${item.identifier}</strong><br />
                      <a href="${page.base}/jobs?task=${encodeURIComponent(item.task)}">${item.task}</a>
                      ${
                        item.payload
                          ? html`<details>
                              <summary>payload</summary>
                              <pre>${prettyJson(item.payload)}</pre>
                            </details>`
                          : ""
                      }
                    </td>
                    <td><code>${item.expression}</code><br /><span>${item.words}</span></td>
                    <td>
                      ${badge(item.verdict)} <span class="muted">${VERDICT_TEXT[item.verdict]}</span><br />
                      tick ${when(item.previousTick, page.now)} <span class="muted">${utc(item.previousTick)}</span>
                      ${
                        item.lastExecution
                          ? html`<br /><span class="muted">last fired for ${utc(item.lastExecution)}</span>`
                          : ""
                      }
                    </td>
                    <td>${when(item.nextTick, page.now)}<br /><span class="muted">${utc(item.nextTick)}</span></td>
                    <td>
                      ${
                        page.actor
                          ? html`<form
                              method="post"
                              action="${page.base}/cron/${encodeURIComponent(item.identifier)}/run"
                            >
                              <button type="submit" data-confirm="Run ${item.task} now (${item.identifier})?">
                                Run now
                              </button>
                            </form>`
                          : ""
                      }
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }`;
  return layout(page, "cron", "Cron", content);
}
