/**
 * Actions over HTTP: refused without a valid credential (nothing changed, nothing recorded),
 * done with one and recorded with who did them; edited payloads checked by the task's schema.
 */
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
  it("serves pages read-only to anyone, and refuses a retry without a credential, changing nothing", async () => {
    const jobId = await failedJob();
    const app = testDashboard(database());
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
