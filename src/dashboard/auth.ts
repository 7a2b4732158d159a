/**
 * Who may read and who may act. With a credential configured, every page needs it too (the
 * default, `PGJOBS_DASHBOARD_PAGES=signed-in`: job pages show payloads, errors and the audit
 * trail); `public` leaves the pages readable by anyone who can reach the dashboard, for a team
 * behind a VPN. Actions always need the credential: `Authorization: Bearer <token>`, basic auth,
 * or the session cookie the token sign-in form sets. /healthz, /metrics (counts and names, never
 * payloads) and the sign-in page with its assets stay open. Without any credential the dashboard
 * is read-only and listens on 127.0.0.1 only. Browsers send basic auth and cookies on their own,
 * so a POST that relies on them must come from the dashboard's own pages (no cross-site form can act).
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { getCookie } from "hono/cookie";

export interface Credentials {
  /** Accepted as `Authorization: Bearer <token>`, or through the sign-in form. */
  token?: string;
  /** HTTP basic auth; the user name is recorded with every action. */
  basic?: { user: string; password: string };
}

/** With a credential configured: whether reading the pages needs it ("signed-in") or only acting does. */
export type PagesAccess = "signed-in" | "public";

export const SESSION_COOKIE = "pgjobs_dashboard";

export type Authentication =
  | { kind: "none" }
  /** A credential was presented and is wrong. */
  | { kind: "invalid"; why: string }
  | { kind: "ok"; actor: string; via: "bearer" | "basic" | "cookie" };

export function hasCredentials(credentials: Credentials | undefined): boolean {
  return Boolean(credentials?.token || (credentials?.basic?.user && credentials.basic.password));
}

/** Compares secrets in constant time (hashing first makes the lengths equal). */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

export function tokenMatches(given: string, credentials: Credentials | undefined): boolean {
  return credentials?.token !== undefined && credentials.token !== "" && sameSecret(given, credentials.token);
}

/** How long a sign-in lasts: a workday. The browser forgets the cookie then, and the server refuses it. */
export const SESSION_TTL_SECONDS = 12 * 60 * 60;

/**
 * The cookie: when it was issued, and a MAC of that under the token (never the token itself).
 * Changing the token signs everyone out; so does the time passing.
 */
export function sessionValue(token: string, issuedAtSeconds = Math.floor(Date.now() / 1000)): string {
  return `${issuedAtSeconds}.${sessionMac(token, issuedAtSeconds)}`;
}

function sessionMac(token: string, issuedAtSeconds: number): string {
  return createHmac("sha256", token).update(`pgjobs dashboard session v2 ${issuedAtSeconds}`).digest("hex");
}

/** Why a session cookie does not sign its bearer in, or undefined when it does. */
function sessionProblem(cookie: string, token: string): string | undefined {
  const [issued = "", mac = ""] = cookie.split(".", 2);
  const issuedAt = /^\d{1,12}$/.test(issued) ? Number(issued) : NaN;
  if (!Number.isFinite(issuedAt) || !sameSecret(mac, sessionMac(token, issuedAt))) {
    return "the sign-in is no longer valid (the token changed); sign in again";
  }
  const age = Date.now() / 1000 - issuedAt;
  if (age > SESSION_TTL_SECONDS || age < -60) return "the sign-in has expired; sign in again";
  return undefined;
}

export function authenticate(c: Context, credentials: Credentials | undefined): Authentication {
  const header = c.req.header("authorization");
  if (header) {
    const [scheme = "", value = ""] = header.split(/\s+/, 2);
    if (scheme.toLowerCase() === "bearer") {
      if (credentials?.token && sameSecret(value, credentials.token))
        return { kind: "ok", actor: "token", via: "bearer" };
      return { kind: "invalid", why: "the bearer token is not the dashboard's token" };
    }
    if (scheme.toLowerCase() === "basic") {
      const decoded = Buffer.from(value, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      const user = colon < 0 ? decoded : decoded.slice(0, colon);
      const password = colon < 0 ? "" : decoded.slice(colon + 1);
      const basic = credentials?.basic;
      // Both compared, always: the time taken says nothing about which one was wrong.
      const userOk = basic ? sameSecret(user, basic.user) : false;
      const passwordOk = basic ? sameSecret(password, basic.password) : false;
      if (basic && userOk && passwordOk) return { kind: "ok", actor: basic.user, via: "basic" };
      return { kind: "invalid", why: "the user name or password is wrong" };
    }
    return { kind: "invalid", why: `the Authorization scheme "${scheme}" is not Bearer or Basic` };
  }
  const cookie = getCookie(c, SESSION_COOKIE);
  if (cookie && credentials?.token) {
    const problem = sessionProblem(cookie, credentials.token);
    return problem === undefined ? { kind: "ok", actor: "token", via: "cookie" } : { kind: "invalid", why: problem };
  }
  return { kind: "none" };
}

/**
 * Whether a state-changing request may have come from another site. Basic auth and cookies are
 * sent by the browser whatever page makes the request, so those requests must say they come from
 * the dashboard's own origin; a bearer token is never added by a browser on its own.
 */
export function crossSiteProblem(c: Context, via: "bearer" | "basic" | "cookie"): string | undefined {
  if (via === "bearer") return undefined;
  const fetchSite = c.req.header("sec-fetch-site");
  if (fetchSite !== undefined) {
    return fetchSite === "same-origin" || fetchSite === "none"
      ? undefined
      : `the request came from another site (Sec-Fetch-Site: ${fetchSite})`;
  }
  const origin = c.req.header("origin");
  if (origin === undefined) return undefined; // not a browser: no ambient credential to abuse
  const host = c.req.header("host");
  try {
    return new URL(origin).host === host ? undefined : `the request came from ${origin}, not this dashboard`;
  } catch {
    return `the request's Origin "${origin}" is not a URL`;
  }
}

export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
