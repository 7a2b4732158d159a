/**
 * The dashboard in headless Chromium (Debian's, installed by .ci/run): a person without the
 * credential lands on the sign-in page, sees no job and cannot act; signed in, they see the failed
 * job, retry it with an edited payload and watch it succeed; the audit row names them. Writes the
 * README's screenshots on the way.
 */
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningDashboard, startDashboard } from "../../src/dashboard/index.ts";
import { useTestDatabase } from "../support/database.ts";
import { waitFor } from "../support/wait.ts";
import { quietLogger, useWorkers } from "../support/worker.ts";
import { addJob, auditRows, CREDENTIALS, dashboardTasks, liveRow, registerTasks, releaseHeldJobs } from "./support.ts";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOTS = fileURLToPath(new URL("../../docs/screenshots/", import.meta.url));
const CRONTAB = [
  '*/15 * * * * dash__ok ?id=dash_ok_quarter_hourly {"n":15}',
  "0 4 * * 1 dash__ok ?id=dash_ok_monday_report&fill=1d",
].join("\n");

const database = useTestDatabase();
const startWorker = useWorkers();
let browser: Browser;
let dashboard: RunningDashboard;

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

afterAll(async () => {
  await dashboard?.close();
  await browser?.close();
});

async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
}

/** The state badge in the job page's title. */
async function jobState(page: Page): Promise<string> {
  return (await page.locator("h1 .badge").textContent())?.trim() ?? "";
}

describe("the dashboard in a browser", () => {
  it("shows nothing and refuses actions without the credential; signed in, retries a failed job with an edited payload", async () => {
    const { db } = database();
    await registerTasks(database());
    await startWorker(database(), { tasks: dashboardTasks, crontab: CRONTAB });
    const heldJob = await addJob(database(), "dash__hold", {});
    for (let n = 0; n < 12; n++) await addJob(database(), "dash__ok", { n });
    const jobId = await addJob(database(), "dash__flaky", { fail: true, note: "bad input" });
    await addJob(database(), "dash__ok", { n: 99 }, { runAt: new Date(Date.now() + 3600_000) });
    await waitFor("the flaky job to fail its only attempt", async () => {
      const row = await liveRow(database(), jobId);
      const failed = await db
        .selectFrom("pgjobs.job_runs")
        .select("state")
        .where("job_id", "=", jobId)
        .executeTakeFirst();
      return row?.attempts === 1 && failed?.state === "failed" ? true : undefined;
    });
    await waitFor("a job to be running", async () => {
      const running = await db
        .selectFrom("pgjobs.runs")
        .select("job_id")
        .where("state", "=", "running")
        .where("job_id", "=", heldJob)
        .executeTakeFirst();
      return running ? true : undefined;
    });
    dashboard = await startDashboard({
      db,
      tasks: dashboardTasks,
      crontab: CRONTAB,
      credentials: CREDENTIALS,
      logger: quietLogger,
      port: 0,
    });

    // A person without the credential lands on the sign-in page: no job, no payload, no action.
    // Its own dashboard, with the token only: with basic auth too, the sign-in page asks for the
    // password with a Basic challenge, which headless Chromium without credentials cannot dismiss.
    const tokenOnly = await startDashboard({
      db,
      tasks: dashboardTasks,
      crontab: CRONTAB,
      credentials: { token: CREDENTIALS.token },
      logger: quietLogger,
      port: 0,
    });
    const anonymous = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await anonymous.newPage();
    await page.goto(`${tokenOnly.url}/jobs?state=failed`);
    expect(new URL(page.url()).pathname).toBe("/login");
    expect(new URL(page.url()).searchParams.get("next")).toBe("/jobs?state=failed");
    expect(await page.locator("h1").textContent()).toBe("Sign in");
    expect(await page.locator(`a[href="/jobs/${jobId}"]`).count()).toBe(0);
    expect(await page.locator("body").textContent()).not.toContain("bad input");
    await page.goto(`${tokenOnly.url}/jobs/${jobId}`);
    expect(new URL(page.url()).pathname).toBe("/login");
    expect(await page.locator("body").textContent()).not.toContain("bad input");
    const [refusal] = await Promise.all([
      page.waitForResponse((response) => response.url().endsWith(`/jobs/${jobId}/retry`)),
      // The form the signed-in page has, submitted by the browser without the credential.
      page.evaluate(`(() => {
        const form = document.createElement("form");
        form.method = "post";
        form.action = "/jobs/${jobId}/retry";
        const payload = document.createElement("textarea");
        payload.name = "payload";
        payload.value = '{"fail": false}';
        form.append(payload);
        document.body.append(form);
        form.submit();
      })()`),
    ]);
    expect(refusal.status()).toBe(401);
    await page.waitForLoadState();
    expect(await page.locator("h1").textContent()).toBe("Sign in to act");
    expect(await liveRow(database(), jobId)).toMatchObject({ attempts: 1, max_attempts: 1, payload: { fail: true } });
    expect(await auditRows(database(), jobId)).toEqual([]);

    // Signing in with the token form leads back to the page asked for, where the failure shows.
    await page.goto(`${tokenOnly.url}/jobs?state=failed`);
    await page.locator("input[name=token]").fill(CREDENTIALS.token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`**/jobs?state=failed`);
    const row = page.locator("table.jobs tbody tr", { has: page.locator(`a[href="/jobs/${jobId}"]`) });
    await expect.poll(() => row.locator(".badge").textContent()).toBe("failed");
    await row.locator(`a[href="/jobs/${jobId}"]`).click();
    await page.waitForURL(`**/jobs/${jobId}`);
    expect(await jobState(page)).toBe("failed");
    expect(await page.locator("main").textContent()).toContain("asked to fail (note: bad input)");
    expect(await page.locator("textarea[name=payload]").count()).toBe(1);
    await anonymous.close();
    await tokenOnly.close();

    // With basic auth: the browser answers the sign-in page's prompt, then edits the payload,
    // retries, and watches it succeed.
    const signedIn = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      httpCredentials: { username: CREDENTIALS.basic.user, password: CREDENTIALS.basic.password },
    });
    const operator = await signedIn.newPage();
    await operator.goto(`${dashboard.url}/`);
    await operator.waitForURL(`${dashboard.url}/`);
    await operator.locator(".uplot").waitFor(); // the chart library loads from the dashboard itself
    await operator.locator(".who strong").waitFor();
    expect(await operator.locator(".who strong").textContent()).toBe("alice");
    await screenshot(operator, "overview");
    await operator.goto(`${dashboard.url}/jobs/${jobId}`);
    await operator.locator("textarea[name=payload]").fill('{"fail": false, "note": "edited in the browser"}');
    await operator.getByRole("button", { name: "Retry now" }).click();
    await operator.waitForURL(`**/jobs/${jobId}`);
    expect(await operator.locator(".notice.ok").textContent()).toContain("with the edited payload");
    await waitFor("the retried job to show as succeeded", async () => {
      await operator.reload();
      return (await jobState(operator)) === "succeeded" ? true : undefined;
    });
    expect(
      await operator.locator("ol.timeline > li").count(),
      (await operator.locator("main").textContent()) ?? "",
    ).toBe(2);
    expect(await operator.locator("main").textContent()).toContain("edited in the browser");
    await screenshot(operator, "job");

    const [audit] = await auditRows(database(), jobId);
    expect(audit).toMatchObject({
      actor: "alice",
      action: "retry",
      job_ids: [jobId],
      detail: { payload: { fail: false, note: "edited in the browser" } },
      outcome: { [jobId]: "rescheduled" },
    });
    expect(audit?.remote_addr).toMatch(/127\.0\.0\.1$/);

    for (const [name, path] of [
      ["jobs", "/jobs"],
      ["tasks", "/tasks"],
      ["cron", "/cron"],
      ["workers", "/workers"],
    ] as const) {
      await operator.goto(`${dashboard.url}${path}`);
      await screenshot(operator, name);
    }
    await signedIn.close();
    releaseHeldJobs();
  });
});
