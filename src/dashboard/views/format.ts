/**
 * Small pieces every page shares: times ("3 min ago", with the UTC time on hover), durations,
 * state badges, pretty JSON. hono's `html` escapes every interpolated value; `raw` is never
 * given anything that came from the database or a request.
 */
import { html } from "hono/html";

export type Html = ReturnType<typeof html>;

/** 2025-11-25 11:03:17 UTC */
export function utc(date: Date | null | undefined): string {
  if (!date) return "";
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** "12 s ago", "in 5 min", "3 h ago", "2 d ago". */
export function relative(date: Date, now: Date): string {
  const seconds = Math.round((now.getTime() - date.getTime()) / 1000);
  const magnitude = Math.abs(seconds);
  const amount =
    magnitude < 60
      ? `${magnitude} s`
      : magnitude < 3600
        ? `${Math.floor(magnitude / 60)} min`
        : magnitude < 86_400 * 2
          ? `${Math.floor(magnitude / 3600)} h ${Math.floor((magnitude % 3600) / 60)} min`
          : `${Math.floor(magnitude / 86_400)} d`;
  return seconds >= 0 ? `${amount} ago` : `in ${amount}`;
}

/** A time as a person reads it first ("3 min ago"), with its UTC value in the markup. */
export function when(date: Date | null | undefined, now: Date): Html {
  if (!date) return html`<span class="muted">—</span>`;
  return html`<time datetime="${date.toISOString()}" title="${utc(date)}">${relative(date, now)}</time>`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function count(value: number): string {
  return value.toLocaleString("en-US");
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

/** The first line of an error, shortened for a table cell. */
export function firstLine(text: string | null | undefined, max = 120): string {
  if (!text) return "";
  const line = text.split("\n", 1)[0] ?? "";
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** A URL under the dashboard's mount point, with a query built from defined values only. */
export function href(base: string, path: string, query: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== "") params.set(key, value);
  const search = params.toString();
  return `${base}${path}${search ? `?${search}` : ""}`;
}
