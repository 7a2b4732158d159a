/**
 * The pgjobs dashboard (Flower's job): server-rendered pages over the queue and its history,
 * behind a credential (pages too, unless `pages: "public"`), /metrics for Prometheus and /healthz.
 *
 * @example Standalone (what `pgjobs dashboard` runs):
 * ```ts
 * const dashboard = await startDashboard({ db, tasks, crontab, logger, port: 5555, credentials: { token } });
 * // … later
 * await dashboard.close();
 * ```
 * @example Mounted in an app's own Hono server (for express or node:http, use
 * `getRequestListener(dashboard.fetch)` from @hono/node-server):
 * ```ts
 * app.route("/admin/jobs", createDashboard({ db, tasks, crontab, logger, credentials, basePath: "/admin/jobs" }));
 * ```
 */
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import type { Kysely } from "kysely";
import type { Database } from "../db/schema.ts";
import type { Logger } from "../logger.ts";
import type { TaskDefinition } from "../tasks/define-task.ts";
import { actionRoutes, loginRoutes, requireSignIn } from "./action-routes.ts";
import { assetRoutes } from "./assets.ts";
import { authenticate, type Credentials, hasCredentials, isLoopbackHost, type PagesAccess } from "./auth.ts";
import type { DashboardDeps, DashboardEnv } from "./context.ts";
import { pageContext } from "./context.ts";
import { parseCronItems } from "../read/cron-schedule.ts";
import { checkHealth } from "../read/health.ts";
import { DashboardMetrics } from "./metrics.ts";
import { pageRoutes } from "./pages.ts";
import { messagePage } from "./views/layout.ts";

export type { Credentials, PagesAccess } from "./auth.ts";

export interface DashboardOptions {
  db: Kysely<Database>;
  /** The app's tasks: edited payloads are checked against their schemas; tasks with no history are listed. */
  tasks: readonly TaskDefinition[];
  /** Crontab text, as the workers read it. */
  crontab: string;
  /** Without one the dashboard is read-only, and startDashboard listens on 127.0.0.1 only. */
  credentials?: Credentials;
  /**
   * With credentials: `"signed-in"` makes every page (job payloads, errors, the audit trail) need
   * them, sending a browser to the sign-in page and answering other clients 401; `"public"` lets
   * anyone who reaches the dashboard read the pages, and only actions need them. /healthz,
   * /metrics and the sign-in page stay open either way. Without credentials it changes nothing.
   * @defaultValue `"signed-in"`
   */
  pages?: PagesAccess;
  logger: Logger;
  /**
   * Where the app mounts the dashboard, for its links ("/admin/jobs").
   * @defaultValue `""` (the root)
   */
  basePath?: string;
  /**
   * /healthz fails when no worker has heartbeat for this long.
   * @defaultValue `30000`, the workers' own liveness bound
   */
  livenessTimeoutMs?: number;
  /** The app's migrations folder, so /healthz also reports the app's pending migrations. */
  appMigrationsDir?: string;
}

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "same-origin",
};

/** The dashboard as a Hono app, to serve or to mount in an app's own server. */
export function createDashboard(options: DashboardOptions): Hono<DashboardEnv> {
  const base = (options.basePath ?? "").replace(/\/+$/, "");
  if (base !== "" && !base.startsWith("/")) throw new Error(`basePath "${options.basePath}" must start with "/".`);
  const pages = options.pages ?? "signed-in";
  if (pages !== "signed-in" && pages !== "public")
    throw new Error(`pages "${String(pages)}" must be "signed-in" or "public".`);
  const deps: DashboardDeps = {
    db: options.db,
    tasks: options.tasks,
    cronItems: parseCronItems(options.crontab),
    credentials: hasCredentials(options.credentials) ? options.credentials : undefined,
    pages,
    logger: options.logger.child({ component: "dashboard" }),
    base,
    livenessTimeoutMs: options.livenessTimeoutMs ?? 30_000,
    appMigrationsDir: options.appMigrationsDir,
  };
  const metrics = new DashboardMetrics({
    db: deps.db,
    taskNames: options.tasks.map((task) => task.name),
    cronItems: deps.cronItems,
  });

  const app = new Hono<DashboardEnv>();
  app.use(async (c, next) => {
    c.set("auth", authenticate(c, deps.credentials));
    await next();
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.header(name, value);
    if (c.res.headers.get("content-type")?.startsWith("text/html")) c.header("cache-control", "no-store");
  });

  app.route("/assets", assetRoutes());
  app.get("/metrics", async (c) => {
    const text = await metrics.render();
    return c.body(text, 200, { "content-type": metrics.contentType });
  });
  app.get("/healthz", async (c) => {
    const report = await checkHealth(deps.db, deps.livenessTimeoutMs, deps.appMigrationsDir);
    return c.json(report, report.ok ? 200 : 503);
  });
  loginRoutes(app, deps);
  // Registered after the open routes above, so it guards only what follows (and unknown paths).
  if (deps.credentials && deps.pages === "signed-in") app.use(requireSignIn(deps));
  pageRoutes(app, deps);
  actionRoutes(app, deps);

  app.notFound((c) =>
    c.html(messagePage(pageContext(c, deps), "Not found", `There is no page at ${c.req.path}.`), 404),
  );
  app.onError((error, c) => {
    deps.logger.error({ err: error, path: c.req.path }, "dashboard request failed");
    return c.html(
      messagePage(
        pageContext(c, deps),
        "The dashboard could not answer",
        `${error.message}\n\nIf PostgreSQL is unreachable, check the database URL and that it is up; ` +
          "the full error is in the dashboard's log.",
      ),
      500,
    );
  });
  return app;
}

export interface RunningDashboard {
  url: string;
  close(): Promise<void>;
}

/** Serves the dashboard until close(). Without a credential it binds 127.0.0.1 whatever `host` says. */
export async function startDashboard(
  options: DashboardOptions & { port: number; host?: string },
): Promise<RunningDashboard> {
  let host = options.host ?? "127.0.0.1";
  if (!hasCredentials(options.credentials) && !isLoopbackHost(host)) {
    options.logger.warn(
      { requestedHost: host },
      `the dashboard has no credential configured, so it listens on 127.0.0.1 only, not ${host}. Set ` +
        "PGJOBS_DASHBOARD_TOKEN (or PGJOBS_DASHBOARD_USER and PGJOBS_DASHBOARD_PASSWORD) to serve other hosts.",
    );
    host = "127.0.0.1";
  }
  const app = createDashboard(options);
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const started = serve({ fetch: app.fetch, port: options.port, hostname: host }, () => resolve(started));
    started.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          error.code === "EADDRINUSE"
            ? `port ${options.port} on ${host} is taken; stop what listens there or set PGJOBS_DASHBOARD_PORT`
            : `the dashboard could not listen on ${host}:${options.port}: ${error.message}`,
          { cause: error },
        ),
      ),
    );
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${shownHost}:${address.port}${options.basePath ?? ""}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Keep-alive connections (a browser tab) would hold close() open.
        if ("closeAllConnections" in server) server.closeAllConnections();
      }),
  };
}
