/**
 * The routes that change something: retry, cancel, bulk, run a cron item now, and signing in.
 * Each action needs a valid credential and is refused with nothing changed without one. Also the
 * guard that makes reading need the credential (PGJOBS_DASHBOARD_PAGES=signed-in).
 */
import type { Context, Hono, MiddlewareHandler } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { html } from "hono/html";
import {
  type Actor,
  bulkTargets,
  cancelJobs,
  checkEditedPayload,
  describeOutcome,
  retryJobs,
  runNow,
} from "../operate/actions.ts";
import {
  crossSiteProblem,
  hasCredentials,
  SESSION_COOKIE,
  SESSION_TTL_SECONDS,
  sessionValue,
  tokenMatches,
} from "./auth.ts";
import {
  badRequest,
  type DashboardDeps,
  type DashboardEnv,
  pageContext,
  remoteAddress,
  safeNext,
  setNotice,
} from "./context.ts";
import { renderJob } from "./pages.ts";
import { FilterError, readJobFilter } from "../read/job-filter.ts";
import { getJob } from "../read/queries.ts";
import { currentPayload } from "./views/job.ts";
import { filterQuery } from "./views/jobs.ts";
import { href } from "./views/format.ts";
import { messagePage } from "./views/layout.ts";

const REALM = 'Basic realm="pgjobs dashboard", charset="UTF-8"';

/** Lets the request through only with a valid credential, from the dashboard's own pages. */
function requireActor(deps: DashboardDeps): MiddlewareHandler<DashboardEnv> {
  return async (c, next) => {
    const auth = c.get("auth");
    const page = () => pageContext(c, deps);
    const refuse = (status: 401 | 403, title: string, message: string) => {
      deps.logger.warn(
        { path: c.req.path, remoteAddr: remoteAddress(c), status },
        `dashboard action refused: ${message}`,
      );
      // No Basic challenge here: a browser would hide this page behind its password prompt.
      // The page links to /login, which asks for the password.
      if (status === 401 && deps.credentials?.token) c.header("WWW-Authenticate", 'Bearer realm="pgjobs dashboard"');
      return c.html(messagePage(page(), title, message, signInHint(deps)), status);
    };
    if (!hasCredentials(deps.credentials)) {
      return refuse(
        403,
        "Actions are off",
        "This dashboard has no credential configured, so it is read-only. Set PGJOBS_DASHBOARD_TOKEN, or " +
          "PGJOBS_DASHBOARD_USER and PGJOBS_DASHBOARD_PASSWORD, and restart it. Nothing was changed.",
      );
    }
    if (auth.kind === "none") {
      return refuse(
        401,
        "Sign in to act",
        "Retrying, cancelling and running jobs need the dashboard's credential (a bearer token or the user and " +
          "password it was started with). Nothing was changed.",
      );
    }
    if (auth.kind === "invalid") {
      return refuse(401, "Credential refused", `The credential was refused: ${auth.why}. Nothing was changed.`);
    }
    const crossSite = crossSiteProblem(c, auth.via);
    if (crossSite) {
      return refuse(
        403,
        "Request refused",
        `Refused: ${crossSite}. Act from the dashboard's own pages. Nothing was changed.`,
      );
    }
    await next();
  };
}

/**
 * Lets a read through only with a valid credential. A browser without one goes to the sign-in
 * page (or, with basic auth only, gets the browser's own password prompt); any other client, or
 * one that sent a bearer token, gets a one-line 401. Other methods pass on to the actions' own
 * guard, which refuses them with its messages.
 */
export function requireSignIn(deps: DashboardDeps): MiddlewareHandler<DashboardEnv> {
  return async (c, next) => {
    const auth = c.get("auth");
    if (auth.kind === "ok" || (c.req.method !== "GET" && c.req.method !== "HEAD")) return next();
    const authorization = c.req.header("authorization") ?? "";
    const browser = !/^bearer\s/i.test(authorization) && (c.req.header("accept") ?? "").includes("text/html");
    if (auth.kind === "invalid") {
      deps.logger.warn(
        { path: c.req.path, remoteAddr: remoteAddress(c) },
        `dashboard page refused: the credential was refused: ${auth.why}`,
      );
    }
    const url = new URL(c.req.url);
    const here = `${url.pathname}${url.search}`;
    const basicOnly = !deps.credentials?.token;
    // A browser with no credential, or a stale sign-in cookie: to the sign-in form.
    if (browser && !basicOnly && !authorization) {
      return c.redirect(href(deps.base, "/login", { next: safeNext(here, deps.base) }), 303);
    }
    if (browser && deps.credentials?.basic && (!authorization || /^basic\s/i.test(authorization))) {
      // The browser's own prompt; a wrong password prompts again.
      c.header("WWW-Authenticate", REALM);
      return c.html(
        messagePage(
          pageContext(c, deps),
          auth.kind === "invalid" ? "Credential refused" : "Sign in",
          auth.kind === "invalid"
            ? `The credential was refused: ${auth.why}.`
            : "This dashboard's pages need its user and password.",
          signInHint(deps),
        ),
        401,
      );
    }
    if (deps.credentials?.token) c.header("WWW-Authenticate", 'Bearer realm="pgjobs dashboard"');
    if (deps.credentials?.basic) c.header("WWW-Authenticate", REALM, { append: true });
    return c.text(
      auth.kind === "invalid"
        ? `Credential refused: ${auth.why}.\n`
        : "This dashboard needs its credential: Authorization: Bearer <PGJOBS_DASHBOARD_TOKEN>, or basic auth.\n",
      401,
    );
  };
}

function signInHint(deps: DashboardDeps) {
  if (!hasCredentials(deps.credentials)) return undefined;
  return html`<p><a class="button" href="${deps.base}/login">Sign in</a></p>`;
}

function actorOf(c: Context<DashboardEnv>): Actor {
  const auth = c.get("auth");
  return { name: auth.kind === "ok" ? auth.actor : "unknown", remoteAddr: remoteAddress(c) };
}

async function form(c: Context): Promise<Record<string, string>> {
  const body = await c.req.parseBody();
  return Object.fromEntries(
    Object.entries(body).filter((entry): entry is [string, string] => typeof entry[1] === "string"),
  );
}

export function actionRoutes(app: Hono<DashboardEnv>, deps: DashboardDeps): void {
  const { db, logger } = deps;
  const guard = requireActor(deps);

  app.post("/jobs/:id{[0-9]{1,19}}/retry", guard, async (c) => {
    const jobId = c.req.param("id");
    const fields = await form(c);
    const detail = await getJob(db, jobId);
    if (!detail) return c.html(messagePage(pageContext(c, deps), "No such job", `Job ${jobId} was not found.`), 404);
    let payload: unknown;
    const text = fields.payload;
    if (text !== undefined && text.trim() !== "") {
      const current = currentPayload(detail);
      const unchanged = current.kept && normalized(text) === JSON.stringify(current.value);
      if (!unchanged) {
        const check = checkEditedPayload(deps.tasks, detail.task, text);
        if (!check.ok) return renderJob(c, deps, jobId, { text, problem: check.problem });
        payload = check.payload;
      }
    }
    const actor = actorOf(c);
    const [outcome] = await retryJobs(db, [jobId], actor, { payload });
    logger.info({ jobId, actor: actor.name, remoteAddr: actor.remoteAddr, outcome }, "dashboard: retry");
    const ok = outcome?.outcome === "rescheduled" || outcome?.outcome === "enqueued_again";
    const text2 = outcome ? describeOutcome(outcome) : `job ${jobId}: nothing done`;
    setNotice(c, deps, ok ? "ok" : "error", payload === undefined ? text2 : `${text2}, with the edited payload`);
    const target = outcome?.newJobId ?? jobId;
    return c.redirect(`${deps.base}/jobs/${target}`, 303);
  });

  app.post("/jobs/:id{[0-9]{1,19}}/cancel", guard, async (c) => {
    const jobId = c.req.param("id");
    const actor = actorOf(c);
    const [outcome] = await cancelJobs(db, [jobId], actor);
    logger.info({ jobId, actor: actor.name, remoteAddr: actor.remoteAddr, outcome }, "dashboard: cancel");
    setNotice(
      c,
      deps,
      outcome?.outcome === "cancelled" ? "ok" : "error",
      outcome ? describeOutcome(outcome) : "nothing done",
    );
    return c.redirect(`${deps.base}/jobs/${jobId}`, 303);
  });

  app.post("/jobs/bulk", guard, async (c) => {
    const fields = await form(c);
    let filter;
    try {
      filter = readJobFilter((name) => fields[name]);
    } catch (error) {
      if (error instanceof FilterError) return badRequest(c, deps, error.message);
      throw error;
    }
    const action = fields.action;
    if (action !== "retry" && action !== "cancel")
      return badRequest(c, deps, 'The bulk action must be "retry" or "cancel".');
    // A state must be chosen: "retry everything" would enqueue every succeeded job again.
    if (!filter.state)
      return badRequest(c, deps, "Choose a state in the filter before acting on every job it matches.");
    const ids = await bulkTargets(db, filter);
    const actor = actorOf(c);
    const detail = { filter: filterQuery(filter) };
    const outcomes =
      action === "retry"
        ? await retryJobs(db, ids, actor, { bulk: true, detail })
        : await cancelJobs(db, ids, actor, { bulk: true, detail });
    const tally = new Map<string, number>();
    for (const outcome of outcomes) tally.set(outcome.outcome, (tally.get(outcome.outcome) ?? 0) + 1);
    const summary = [...tally].map(([outcome, n]) => `${n} ${outcome.replace(/_/g, " ")}`).join(", ");
    logger.info(
      { action, jobs: ids.length, actor: actor.name, remoteAddr: actor.remoteAddr, summary },
      "dashboard: bulk",
    );
    setNotice(c, deps, "ok", `Bulk ${action} of ${ids.length} job(s): ${summary || "none matched"}.`);
    return c.redirect(href(deps.base, "/jobs", filterQuery(filter)), 303);
  });

  app.post("/cron/:identifier/run", guard, async (c) => {
    const identifier = c.req.param("identifier");
    const item = deps.cronItems.find((candidate) => candidate.identifier === identifier);
    if (!item)
      return c.html(messagePage(pageContext(c, deps), "No such cron item", `No crontab item "${identifier}".`), 404);
    const actor = actorOf(c);
    const jobId = await runNow(
      db,
      {
        task: item.task,
        // As graphile-worker would enqueue the tick, marked as a manual run.
        payload: { ...item.payload, _cron: { ts: new Date().toISOString(), backfilled: false, manual: true } },
        queue: item.queue,
        maxAttempts: item.maxAttempts,
        priority: item.priority,
        detail: { cron: item.identifier, line: item.line },
      },
      actor,
    );
    logger.info({ identifier, jobId, actor: actor.name, remoteAddr: actor.remoteAddr }, "dashboard: cron run now");
    setNotice(c, deps, "ok", `${item.identifier}: enqueued ${item.task} as job ${jobId}, to run now.`);
    return c.redirect(`${deps.base}/jobs/${jobId}`, 303);
  });
}

/** The payload text as JSON would print it, to tell an edit from the text as shown. */
function normalized(text: string): string | undefined {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** The sign-in page and form, and signing out: open, so a browser without the credential can get it. */
export function loginRoutes(app: Hono<DashboardEnv>, deps: DashboardDeps): void {
  const loginPage = (c: Context<DashboardEnv>, error?: string) => {
    const next = safeNext(c.req.query("next"), deps.base);
    return messagePage(
      pageContext(c, deps),
      "Sign in",
      deps.credentials?.basic
        ? "Your browser asks for the dashboard's user and password."
        : "Enter the dashboard's token (PGJOBS_DASHBOARD_TOKEN).",
      deps.credentials?.token
        ? html`<form class="login" method="post" action="${deps.base}/login">
            ${error ? html`<p class="error">${error}</p>` : ""}
            <input type="hidden" name="next" value="${next}" />
            <label>Token <input type="password" name="token" autocomplete="current-password" required /></label>
            <button type="submit">Sign in</button>
          </form>`
        : undefined,
    );
  };

  app.get("/login", (c) => {
    if (c.get("auth").kind === "ok") return c.redirect(safeNext(c.req.query("next"), deps.base), 303);
    if (!hasCredentials(deps.credentials)) {
      return c.html(
        messagePage(pageContext(c, deps), "Sign in", "No credential is configured: the dashboard is read-only."),
        403,
      );
    }
    if (deps.credentials?.basic) {
      // The browser's own prompt; it then sends the credential with every request.
      c.header("WWW-Authenticate", REALM);
      return c.html(loginPage(c), 401);
    }
    return c.html(loginPage(c));
  });

  app.post("/login", async (c) => {
    const fields = await form(c);
    const token = deps.credentials?.token;
    const crossSite = crossSiteProblem(c, "cookie");
    if (!token || crossSite || fields.token === undefined) {
      return c.html(loginPage(c, crossSite ?? "Sign-in with a token is not configured."), 403);
    }
    if (!tokenMatches(fields.token, deps.credentials)) {
      deps.logger.warn({ remoteAddr: remoteAddress(c) }, "dashboard sign-in refused: wrong token");
      return c.html(loginPage(c, "That is not the dashboard's token."), 401);
    }
    setCookie(c, SESSION_COOKIE, sessionValue(token), {
      path: deps.base || "/",
      httpOnly: true,
      sameSite: "Strict",
      secure: new URL(c.req.url).protocol === "https:",
      maxAge: SESSION_TTL_SECONDS,
    });
    return c.redirect(safeNext(fields.next, deps.base), 303);
  });

  app.post("/logout", (c) => {
    deleteCookie(c, SESSION_COOKIE, { path: deps.base || "/" });
    return c.redirect(`${deps.base}/`, 303);
  });
}
