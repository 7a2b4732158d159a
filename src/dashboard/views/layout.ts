/** The frame of every page: navigation, who is signed in, the notice of the last action. */
import { html } from "hono/html";
import { type Html, href, utc } from "./format.ts";

export interface PageContext {
  /** Where the dashboard is mounted ("" at the root). */
  base: string;
  /** The signed-in actor, or undefined: the page is read-only. */
  actor: string | undefined;
  /** Whether any credential is configured (without one, nobody can act). */
  canSignIn: boolean;
  /** The current request's path and query, to come back to after signing in. */
  here: string;
  now: Date;
  /** The outcome of the action that led here. */
  notice?: { kind: "ok" | "error"; text: string };
}

const NAV: Array<{ path: string; label: string; key: string }> = [
  { path: "/", label: "Overview", key: "overview" },
  { path: "/jobs", label: "Jobs", key: "jobs" },
  { path: "/tasks", label: "Tasks", key: "tasks" },
  { path: "/cron", label: "Cron", key: "cron" },
  { path: "/workers", label: "Workers", key: "workers" },
];

export function layout(page: PageContext, current: string, title: string, content: Html): Html {
  const who = page.actor
    ? html`<span>signed in as <strong>${page.actor}</strong></span>`
    : page.canSignIn
      ? html`<span class="muted">read-only</span>
          <a class="button small" href="${href(page.base, "/login", { next: page.here })}">Sign in to act</a>`
      : html`<span
          class="muted"
          title="Set PGJOBS_DASHBOARD_TOKEN, or PGJOBS_DASHBOARD_USER and PGJOBS_DASHBOARD_PASSWORD"
          >read-only (no credential configured)</span
        >`;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · pgjobs</title>
        <link rel="stylesheet" href="${page.base}/assets/dashboard.css" />
        <link rel="stylesheet" href="${page.base}/assets/uplot.css" />
      </head>
      <body>
        <header class="top">
          <a class="brand" href="${page.base}/">pgjobs</a>
          <nav>
            ${NAV.map(
              (item) =>
                html`<a href="${page.base}${item.path}" ${item.key === current ? html`aria-current="page"` : ""}
                  >${item.label}</a
                >`,
            )}
          </nav>
          <div class="who">${who}</div>
        </header>
        <main>
          ${
            page.notice
              ? html`<div class="notice ${page.notice.kind}" role="status"><pre>${page.notice.text}</pre></div>`
              : ""
          }
          ${content}
        </main>
        <footer>All times UTC · page made ${utc(page.now)} · <a href="${page.base}/metrics">/metrics</a></footer>
        <script src="${page.base}/assets/uplot.js" defer></script>
        <script src="${page.base}/assets/dashboard.js" defer></script>
      </body>
    </html>`;
}

/** A page that only says something (refusals, not found). */
export function messagePage(page: PageContext, title: string, message: string, detail?: Html): Html {
  return layout(
    page,
    "",
    title,
    html`<h1>${title}</h1>
      <p class="message">${message}</p>
      ${detail ?? ""}`,
  );
}
