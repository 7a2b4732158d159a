/** What every route needs: the dashboard's settings, who is asking, and the page frame. */
import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { Kysely } from "kysely";
import type { Database } from "../db/schema.ts";
import type { Logger } from "../logger.ts";
import type { TaskDefinition } from "../tasks/define-task.ts";
import { type Authentication, type Credentials, hasCredentials, type PagesAccess } from "./auth.ts";
import type { CronItemView } from "../read/cron-schedule.ts";
import { messagePage, type PageContext } from "./views/layout.ts";

export interface DashboardDeps {
  db: Kysely<Database>;
  tasks: readonly TaskDefinition[];
  cronItems: CronItemView[];
  credentials: Credentials | undefined;
  /** Only meaningful with credentials: without any, pages are open (and served on 127.0.0.1 only). */
  pages: PagesAccess;
  logger: Logger;
  base: string;
  livenessTimeoutMs: number;
  appMigrationsDir: string | undefined;
}

export interface DashboardEnv {
  Variables: { auth: Authentication };
}

const NOTICE_COOKIE = "pgjobs_dashboard_notice";

/** Says what an action did on the page the browser is sent to next (post, redirect, get). */
export function setNotice(c: Context<DashboardEnv>, deps: DashboardDeps, kind: "ok" | "error", text: string): void {
  setCookie(c, NOTICE_COOKIE, JSON.stringify({ kind, text: text.slice(0, 3000) }), {
    path: deps.base || "/",
    httpOnly: true,
    sameSite: "Strict",
    maxAge: 60,
  });
}

function takeNotice(c: Context<DashboardEnv>, deps: DashboardDeps): PageContext["notice"] {
  const value = getCookie(c, NOTICE_COOKIE);
  if (value === undefined) return undefined;
  deleteCookie(c, NOTICE_COOKIE, { path: deps.base || "/" });
  try {
    const parsed = JSON.parse(value) as { kind?: unknown; text?: unknown };
    if ((parsed.kind === "ok" || parsed.kind === "error") && typeof parsed.text === "string") {
      return { kind: parsed.kind, text: parsed.text };
    }
  } catch {
    // a cookie we did not write: ignore it
  }
  return undefined;
}

export function pageContext(c: Context<DashboardEnv>, deps: DashboardDeps): PageContext {
  const auth = c.get("auth");
  const url = new URL(c.req.url);
  return {
    base: deps.base,
    actor: auth.kind === "ok" ? auth.actor : undefined,
    canSignIn: hasCredentials(deps.credentials),
    here: `${url.pathname}${url.search}`,
    now: new Date(),
    notice: takeNotice(c, deps),
  };
}

export function badRequest(
  c: Context<DashboardEnv>,
  deps: DashboardDeps,
  message: string,
): Response | Promise<Response> {
  return c.html(messagePage(pageContext(c, deps), "Bad request", message), 400);
}

/** The client's address, when the dashboard runs on @hono/node-server (else null). */
export function remoteAddress(c: Context): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null;
  }
}

/**
 * A path to go back to after signing in: only ours, never another site. Control characters are
 * refused too: browsers drop tabs and newlines from a URL before parsing it, so "/\t/evil.example"
 * would be "//evil.example" (and a newline would not fit in a Location header).
 */
export function safeNext(next: string | undefined, base: string): string {
  const home = `${base}/`;
  if (
    !next ||
    !next.startsWith(home) ||
    next.startsWith("//") ||
    next.includes("\\") ||
    [...next].some((char) => char.charCodeAt(0) < 0x20 || char.charCodeAt(0) === 0x7f)
  )
    return home;
  return next;
}
