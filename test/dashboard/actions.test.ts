/**
 * Actions over HTTP: refused without a valid credential (nothing changed, nothing recorded),
 * done with one and recorded with who did them; edited payloads checked by the task's schema.
 */
import { Hono } from "hono";
import { SESSION_TTL_SECONDS, sessionValue } from "../../src/dashboard/auth.ts";
import { describe, expect, it } from "vitest";
import { startDashboard } from "../../src/dashboard/index.ts";
import { drainJobs } from "../../src/testing/kit.ts";
import { useTestDatabase } from "../support/database.ts";
import { quietLogger } from "../support/worker.ts";
import {
  addJob,
  auditRows,
  BASIC,
  CREDENTIALS,
  dashboardTasks,
  formBody,
  liveRow,
  registerTasks,
  testDashboard,
} from "./support.ts";

const database = useTestDatabase();

async function failedJob(): Promise<string> {
  await registerTasks(database());
  const jobId = await addJob(database(), "dash__flaky", { fail: true });
  await drainJobs(database().pool, dashboardTasks);
  const row = await liveRow(database(), jobId);
  expect(row).toMatchObject({ attempts: 1, max_attempts: 1 });
  return jobId;
}

describe("dashboard actions need a credential", () => {
  it("with pages public, serves them read-only to anyone, and refuses a retry without a credential, changing nothing", async () => {
    const jobId = await failedJob();
    const app = testDashboard(database(), { pages: "public" });
    const page = await app.request(`/jobs/${jobId}`);
    expect(page.status).toBe(200);
    const text = await page.text();
    expect(text).toContain("read-only");
    expect(text).not.toContain(`action="/jobs/${jobId}/retry"`);

    const refused = await app.request(`/jobs/${jobId}/retry`, { method: "POST", ...formBody({ payload: "" }) });
    expect(refused.status).toBe(401);
    // Not a Basic challenge: the browser would hide the message behind its password prompt.
    expect(refused.headers.get("www-authenticate")).toMatch(/^Bearer realm=/);
    const signIn = await app.request("/login");
    expect(signIn.status).toBe(401);
    expect(signIn.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
    expect(await refused.text()).toContain("Nothing was changed");
    expect(await liveRow(database(), jobId)).toMatchObject({ attempts: 1, max_attempts: 1 });
    expect(await auditRows(database(), jobId)).toEqual([]);
  });

  it("with pages signed-in (the default), still refuses an action without a credential with 401, changing nothing", async () => {
    const jobId = await failedJob();
    const app = testDashboard(database());
    const refused = await app.request(`/jobs/${jobId}/retry`, { method: "POST", ...formBody({ payload: "" }) });
    expect(refused.status).toBe(401);
    expect(await refused.text()).toContain("Nothing was changed");
    expect(await liveRow(database(), jobId)).toMatchObject({ attempts: 1, max_attempts: 1 });
  });

  it("refuses a wrong token or password with 401, and a cross-site form with 403", async () => {
    const jobId = await failedJob();
    const app = testDashboard(database());
    const wrongToken = await app.request(`/jobs/${jobId}/cancel`, {
      method: "POST",
      headers: { authorization: "Bearer not-the-token" },
    });
    expect(wrongToken.status).toBe(401);
    const wrongPassword = await app.request(`/jobs/${jobId}/cancel`, {
      method: "POST",
      headers: { authorization: `Basic ${Buffer.from("alice:guess").toString("base64")}` },
    });
    expect(wrongPassword.status).toBe(401);
    const crossSite = await app.request(`/jobs/${jobId}/cancel`, {
      method: "POST",
      headers: { authorization: BASIC, "sec-fetch-site": "cross-site" },
    });
    expect(crossSite.status).toBe(403);
    const otherOrigin = await app.request(`/jobs/${jobId}/cancel`, {
      method: "POST",
      headers: { authorization: BASIC, origin: "https://evil.example", host: "localhost" },
    });
    expect(otherOrigin.status).toBe(403);
    expect(await liveRow(database(), jobId)).toBeDefined();
    expect(await auditRows(database(), jobId)).toEqual([]);
  });

  it("has no actions at all when no credential is configured", async () => {
    const jobId = await failedJob();
    const app = testDashboard(database(), { credentials: undefined });
    const refused = await app.request(`/jobs/${jobId}/cancel`, { method: "POST", headers: { authorization: BASIC } });
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain("PGJOBS_DASHBOARD_TOKEN");
    expect(await liveRow(database(), jobId)).toBeDefined();
  });

  it("listens on 127.0.0.1 only when no credential is configured, whatever host is asked for", async () => {
    const open = await startDashboard({
      db: database().db,
      tasks: dashboardTasks,
      crontab: "",
      logger: quietLogger,
      port: 0,
      host: "0.0.0.0",
    });
    try {
      expect(new URL(open.url).hostname).toBe("127.0.0.1");
    } finally {
      await open.close();
    }
    const guarded = await startDashboard({
      db: database().db,
      tasks: dashboardTasks,
      crontab: "",
      logger: quietLogger,
      credentials: CREDENTIALS,
      port: 0,
      host: "0.0.0.0",
    });
    try {
      expect(new URL(guarded.url).hostname).toBe("0.0.0.0");
    } finally {
      await guarded.close();
    }
  });
});

describe("reading the pages with a credential configured", () => {
  const MARKER = "personal-data-of-a-customer";
  const TOKEN_ONLY = { token: CREDENTIALS.token };
  const HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

  /** A failed job whose payload and error both hold MARKER. */
  async function privateJob(): Promise<string> {
    await registerTasks(database());
    const jobId = await addJob(database(), "dash__flaky", { fail: true, note: MARKER });
    await drainJobs(database().pool, dashboardTasks);
    return jobId;
  }

  it("by default, over HTTP: every page sends a browser to sign in and answers curl 401, never showing the payload", async () => {
    const jobId = await privateJob();
    const running = await startDashboard({
      db: database().db,
      tasks: dashboardTasks,
      crontab: "",
      logger: quietLogger,
      credentials: TOKEN_ONLY,
      port: 0,
      host: "0.0.0.0",
    });
    const url = running.url.replace("0.0.0.0", "127.0.0.1");
    try {
      for (const path of [
        "/",
        "/jobs",
        `/jobs/${jobId}`,
        "/jobs?state=failed",
        "/tasks",
        "/cron",
        "/workers",
        "/nowhere",
      ]) {
        const browser = await fetch(`${url}${path}`, { headers: { accept: HTML }, redirect: "manual" });
        const browserBody = await browser.text();
        expect(browser.status, path).toBe(303);
        expect(browser.headers.get("location"), path).toBe(`/login?next=${encodeURIComponent(path)}`);
        expect(browserBody, path).not.toContain(MARKER);

        const curl = await fetch(`${url}${path}`); // Accept: */*, as curl sends
        const curlBody = await curl.text();
        expect(curl.status, path).toBe(401);
        expect(curl.headers.get("content-type"), path).toMatch(/^text\/plain/);
        expect(curl.headers.get("www-authenticate"), path).toMatch(/^Bearer realm=/);
        expect(curlBody.trim().split("\n"), path).toHaveLength(1);
        expect(curlBody, path).not.toContain(MARKER);

        const wrong = await fetch(`${url}${path}`, {
          headers: { authorization: "Bearer not-the-token", accept: HTML },
        });
        expect(wrong.status, path).toBe(401);
        expect(await wrong.text(), path).not.toContain(MARKER);
      }

      const bearer = await fetch(`${url}/jobs/${jobId}`, { headers: { authorization: `Bearer ${CREDENTIALS.token}` } });
      expect(bearer.status).toBe(200);
      expect(await bearer.text()).toContain(MARKER);

      // The sign-in page and what it needs are open; signing in leads back to the page asked for.
      const login = await fetch(`${url}/login?next=${encodeURIComponent(`/jobs/${jobId}`)}`, {
        headers: { accept: HTML },
      });
      expect(login.status).toBe(200);
      const loginHtml = await login.text();
      expect(loginHtml).toContain('name="token"');
      expect(loginHtml).not.toContain(MARKER);
      expect((await fetch(`${url}/assets/dashboard.css`)).status).toBe(200);
      const signIn = await fetch(`${url}/login`, {
        method: "POST",
        body: new URLSearchParams({ token: CREDENTIALS.token, next: `/jobs/${jobId}` }),
        headers: { "sec-fetch-site": "same-origin" },
        redirect: "manual",
      });
      expect(signIn.status).toBe(303);
      expect(signIn.headers.get("location")).toBe(`/jobs/${jobId}`);
      const cookie = signIn.headers.get("set-cookie")!.split(";")[0]!;
      const withCookie = await fetch(`${url}/jobs/${jobId}`, { headers: { cookie, accept: HTML } });
      expect(withCookie.status).toBe(200);
      expect(await withCookie.text()).toContain(MARKER);
      // A cookie from before the token changed is a sign-in to do again, not a way in.
      const stale = await fetch(`${url}/jobs/${jobId}`, {
        headers: { cookie: `${cookie.split("=")[0]}=${"0".repeat(64)}`, accept: HTML },
        redirect: "manual",
      });
      expect(stale.status).toBe(303);
      expect(await stale.text()).not.toContain(MARKER);
      // A sign-in lasts a workday: the browser is told so, and an older cookie is refused.
      expect(signIn.headers.get("set-cookie")).toContain(`Max-Age=${SESSION_TTL_SECONDS}`);
      const dayOld = sessionValue(CREDENTIALS.token, Math.floor(Date.now() / 1000) - SESSION_TTL_SECONDS - 60);
      const expired = await fetch(`${url}/jobs/${jobId}`, {
        headers: { cookie: `${cookie.split("=")[0]}=${dayOld}`, accept: HTML },
        redirect: "manual",
      });
      expect(expired.status).toBe(303);
      expect(await expired.text()).not.toContain(MARKER);
      const fresh = sessionValue(CREDENTIALS.token);
      const again = await fetch(`${url}/jobs/${jobId}`, {
        headers: { cookie: `${cookie.split("=")[0]}=${fresh}`, accept: HTML },
      });
      expect(again.status).toBe(200);

      // Load balancers and Prometheus need no credential; a bearer token on /metrics is accepted.
      expect([200, 503]).toContain((await fetch(`${url}/healthz`)).status);
      const metrics = await fetch(`${url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).not.toContain(MARKER);
      expect(
        (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${CREDENTIALS.token}` } })).status,
      ).toBe(200);
    } finally {
      await running.close();
    }
  });

  it("guards the same way when mounted under a base path in an app's own server", async () => {
    const jobId = await privateJob();
    const server = new Hono();
    server.route("/admin/jobs", testDashboard(database(), { credentials: TOKEN_ONLY, basePath: "/admin/jobs" }));
    const browser = await server.request(`/admin/jobs/jobs/${jobId}`, { headers: { accept: HTML } });
    expect(browser.status).toBe(303);
    expect(browser.headers.get("location")).toBe(
      `/admin/jobs/login?next=${encodeURIComponent(`/admin/jobs/jobs/${jobId}`)}`,
    );
    expect(await browser.text()).not.toContain(MARKER);
    expect((await server.request(`/admin/jobs/jobs/${jobId}`)).status).toBe(401);
    expect((await server.request("/admin/jobs/login", { headers: { accept: HTML } })).status).toBe(200);
    expect((await server.request("/admin/jobs/assets/dashboard.css")).status).toBe(200);
    expect((await server.request("/admin/jobs/metrics")).status).toBe(200);
    expect((await server.request("/admin/jobs/healthz")).status).not.toBe(401);
    const bearer = await server.request(`/admin/jobs/jobs/${jobId}`, {
      headers: { authorization: `Bearer ${CREDENTIALS.token}` },
    });
    expect(bearer.status).toBe(200);
    expect(await bearer.text()).toContain(MARKER);
  });

  it("with basic auth only, answers a browser 401 with a Basic challenge so it asks for the password", async () => {
    const jobId = await privateJob();
    const app = testDashboard(database(), { credentials: { basic: CREDENTIALS.basic } });
    const prompt = await app.request(`/jobs/${jobId}`, { headers: { accept: HTML } });
    expect(prompt.status).toBe(401);
    expect(prompt.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
    expect(await prompt.text()).not.toContain(MARKER);
    const wrong = await app.request(`/jobs/${jobId}`, {
      headers: { accept: HTML, authorization: `Basic ${Buffer.from("alice:guess").toString("base64")}` },
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
    expect(await wrong.text()).not.toContain(MARKER);
    const api = await app.request(`/jobs/${jobId}`);
    expect(api.status).toBe(401);
    expect(api.headers.get("content-type")).toMatch(/^text\/plain/);
    const signedIn = await app.request(`/jobs/${jobId}`, { headers: { accept: HTML, authorization: BASIC } });
    expect(signedIn.status).toBe(200);
    expect(await signedIn.text()).toContain(MARKER);
  });

  it("with pages public, serves every page without a credential, while actions still need one", async () => {
    const jobId = await privateJob();
    const app = testDashboard(database(), { credentials: TOKEN_ONLY, pages: "public" });
    for (const path of ["/", "/jobs", `/jobs/${jobId}`, "/tasks", "/cron", "/workers"]) {
      expect((await app.request(path, { headers: { accept: HTML } })).status, path).toBe(200);
    }
    expect(await (await app.request(`/jobs/${jobId}`)).text()).toContain(MARKER);
    const cancel = await app.request(`/jobs/${jobId}/cancel`, { method: "POST" });
    expect(cancel.status).toBe(401);
    const wrong = await app.request(`/jobs/${jobId}/cancel`, {
      method: "POST",
      headers: { authorization: "Bearer not-the-token" },
    });
    expect(wrong.status).toBe(401);
    expect(await liveRow(database(), jobId)).toBeDefined();
  });

  it("changes nothing without a credential configured: pages open, whatever pages says", async () => {
    const jobId = await privateJob();
    for (const pages of ["signed-in", "public"] as const) {
      const app = testDashboard(database(), { credentials: undefined, pages });
      expect((await app.request(`/jobs/${jobId}`)).status, pages).toBe(200);
    }
    expect(() => testDashboard(database(), { pages: "Public" as "public" })).toThrow(/"signed-in" or "public"/);
  });
});

describe("dashboard actions with a credential", () => {
  it("cancels with a bearer token and records who, what and the outcome", async () => {
    const jobId = await failedJob();
    const app = testDashboard(database());
    const done = await app.request(`/jobs/${jobId}/cancel`, {
      method: "POST",
      headers: { authorization: `Bearer ${CREDENTIALS.token}` },
    });
    expect(done.status).toBe(303);
    expect(await liveRow(database(), jobId)).toBeUndefined();
    const history = await database()
      .db.selectFrom("pgjobs.job_runs")
      .select(["state", "attempt"])
      .where("job_id", "=", jobId)
      .orderBy("attempt")
      .execute();
    expect(history).toEqual([
      { state: "failed", attempt: 1 },
      { state: "cancelled", attempt: 2 },
    ]);
    const [audit] = await auditRows(database(), jobId);
    expect(audit).toMatchObject({
      actor: "token",
      action: "cancel",
      job_ids: [jobId],
      outcome: { [jobId]: "cancelled" },
    });
  });

  it("refuses an edited payload that fails the task's schema, naming the field, and changes nothing", async () => {
    const jobId = await failedJob();
    const app = testDashboard(database());
    const refused = await app.request(`/jobs/${jobId}/retry`, {
      method: "POST",
      ...formBody({ payload: '{"fail": "no"}' }),
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: BASIC },
    });
    expect(refused.status).toBe(422);
    const text = await refused.text();
    expect(text).toContain("does not fit task");
    expect(text).toContain("fail");
    expect(await liveRow(database(), jobId)).toMatchObject({ attempts: 1, max_attempts: 1, payload: { fail: true } });
    expect(await auditRows(database(), jobId)).toEqual([]);
  });

  it("refuses an edited payload with a key the task does not declare (a typo), as enqueue does", async () => {
    const jobId = await failedJob();
    const app = testDashboard(database());
    const refused = await app.request(`/jobs/${jobId}/retry`, {
      method: "POST",
      ...formBody({ payload: '{"fail": false, "nots": "typo"}' }),
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: BASIC },
    });
    expect(refused.status).toBe(422);
    const text = await refused.text();
    expect(text).toContain("does not fit task");
    expect(text).toContain("nots");
    expect(await liveRow(database(), jobId)).toMatchObject({ attempts: 1, max_attempts: 1, payload: { fail: true } });
    expect(await auditRows(database(), jobId)).toEqual([]);
  });

  it("retries with an edited payload, which the job then runs with, recorded under the basic-auth user", async () => {
    const jobId = await failedJob();
    const app = testDashboard(database());
    const done = await app.request(`/jobs/${jobId}/retry`, {
      method: "POST",
      body: new URLSearchParams({ payload: '{"fail": false, "note": "fixed by hand"}' }),
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: BASIC },
    });
    expect(done.status).toBe(303);
    expect(done.headers.get("location")).toBe(`/jobs/${jobId}`);
    expect(await liveRow(database(), jobId)).toMatchObject({
      attempts: 1,
      max_attempts: 2,
      payload: { fail: false, note: "fixed by hand" },
    });
    const outcome = await drainJobs(database().pool, dashboardTasks);
    expect(outcome).toEqual({ succeeded: 1 });
    const last = await database()
      .db.selectFrom("pgjobs.job_runs")
      .select(["attempt", "state", "result"])
      .where("job_id", "=", jobId)
      .orderBy("attempt", "desc")
      .executeTakeFirstOrThrow();
    expect(last).toEqual({ attempt: 2, state: "succeeded", result: { fixed: true, note: "fixed by hand" } });
    const [audit] = await auditRows(database(), jobId);
    expect(audit).toMatchObject({
      actor: "alice",
      action: "retry",
      job_ids: [jobId],
      detail: { payload: { fail: false, note: "fixed by hand" } },
      outcome: { [jobId]: "rescheduled" },
    });
  });

  it("enqueues a finished job again with its recorded payload", async () => {
    await registerTasks(database());
    const jobId = await addJob(database(), "dash__ok", { n: 7 });
    await drainJobs(database().pool, dashboardTasks);
    const app = testDashboard(database());
    const done = await app.request(`/jobs/${jobId}/retry`, { method: "POST", headers: { authorization: BASIC } });
    expect(done.status).toBe(303);
    const newJobId = done.headers.get("location")!.split("/").pop()!;
    expect(newJobId).not.toBe(jobId);
    expect(await liveRow(database(), newJobId)).toMatchObject({ payload: { n: 7 } });
    const audit = (await auditRows(database(), jobId)).at(-1);
    expect(audit).toMatchObject({ actor: "alice", action: "retry", outcome: { [jobId]: newJobId } });
  });

  it("signs in with the token form and acts with its cookie, from the dashboard's own pages only", async () => {
    const jobId = await failedJob();
    const app = testDashboard(database());
    const signIn = await app.request("/login", {
      method: "POST",
      body: new URLSearchParams({ token: CREDENTIALS.token, next: `/jobs/${jobId}` }),
      headers: { "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin" },
    });
    expect(signIn.status).toBe(303);
    expect(signIn.headers.get("location")).toBe(`/jobs/${jobId}`);
    const cookie = signIn.headers.get("set-cookie")!.split(";")[0]!;
    expect(cookie).not.toContain(CREDENTIALS.token);
    const crossSite = await app.request(`/jobs/${jobId}/cancel`, {
      method: "POST",
      headers: { cookie, "sec-fetch-site": "cross-site" },
    });
    expect(crossSite.status).toBe(403);
    const done = await app.request(`/jobs/${jobId}/cancel`, {
      method: "POST",
      headers: { cookie, "sec-fetch-site": "same-origin" },
    });
    expect(done.status).toBe(303);
    expect(await liveRow(database(), jobId)).toBeUndefined();
  });
  it("sends a sign-in only to its own pages: a tab, newline or backslash cannot turn `next` into another site", async () => {
    const app = testDashboard(database());
    // Browsers drop tabs and newlines from a URL before parsing it, so "/\t/evil.example" is
    // "//evil.example": another host.
    for (const next of [
      "/\t/evil.example",
      "/\n/evil.example",
      "/\r\n/evil.example",
      "/\\evil.example",
      "//evil.example",
    ]) {
      const signIn = await app.request("/login", {
        method: "POST",
        body: new URLSearchParams({ token: CREDENTIALS.token, next }),
        headers: { "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin" },
      });
      expect(signIn.status, JSON.stringify(next)).toBe(303);
      expect(signIn.headers.get("location"), JSON.stringify(next)).toBe("/");
    }
  });
});
