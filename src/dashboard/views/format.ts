/**
 * Small pieces every page shares: times ("3 min ago", with the UTC time on hover), durations,
 * state badges, pretty JSON. hono's `html` escapes every interpolated value; `raw` is never
 * given anything that came from the database or a request.
 */
import { html } from "hono/html";
import { relative, utc } from "../../read/format.ts";

export { count, duration, firstLine, relative, utc } from "../../read/format.ts";

export type Html = ReturnType<typeof html>;

/** A time as a person reads it first ("3 min ago"), with its UTC value in the markup. */
export function when(date: Date | null | undefined, now: Date): Html {
  if (!date) return html`<span class="muted">—</span>`;
  return html`<time datetime="${date.toISOString()}" title="${utc(date)}">${relative(date, now)}</time>`;
}

const BADGE_CLASS: Record<string, string> = {
  succeeded: "ok",
  fired: "ok",
  running: "run",
  retrying: "warn",
  queued: "idle",
  waiting: "idle",
  scheduled: "idle",
  due: "idle",
  new: "idle",
  stopping: "warn",
  locked: "run",
  failed: "bad",
  rejected: "bad",
  timed_out: "bad",
  abandoned: "bad",
  marked_failed: "bad",
  missed: "bad",
  lost: "bad",
  cancelled: "muted",
  marked_complete: "muted",
  stopped: "muted",
  unknown: "muted",
};

export function badge(state: string): Html {
  return html`<span class="badge ${BADGE_CLASS[state] ?? "muted"}">${state.replace(/_/g, " ")}</span>`;
}

export function prettyJson(value: unknown): string {
  if (value === undefined) return "";
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return "(a value JSON cannot show)";
  }
}

/** A URL under the dashboard's mount point, with a query built from defined values only. */
export function href(base: string, path: string, query: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== "") params.set(key, value);
  const search = params.toString();
  return `${base}${path}${search ? `?${search}` : ""}`;
}
