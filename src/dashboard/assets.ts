/**
 * Static files the pages use, served by the dashboard itself (the machines it runs on may be
 * offline: no CDN). uPlot comes straight from node_modules; the stylesheet sits beside this file.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Hono } from "hono";
import { CLIENT_SCRIPT } from "./assets/client-script.ts";

const require = createRequire(import.meta.url);

function load(path: string): string {
  return readFileSync(path, "utf8");
}

interface Asset {
  type: string;
  body: string;
}

export function assetRoutes(): Hono {
  // Read once, at start: a missing file fails the start, not a page later.
  const files: Record<string, Asset> = {
    "dashboard.css": { type: "text/css", body: load(new URL("./assets/dashboard.css", import.meta.url).pathname) },
    "dashboard.js": { type: "text/javascript", body: CLIENT_SCRIPT },
    "uplot.js": { type: "text/javascript", body: load(require.resolve("uplot/dist/uPlot.iife.min.js")) },
    "uplot.css": { type: "text/css", body: load(require.resolve("uplot/dist/uPlot.min.css")) },
  };
  const app = new Hono();
  app.get("/:name", (c) => {
    const asset = files[c.req.param("name")];
    if (!asset) return c.text("No such asset.", 404);
    c.header("content-type", `${asset.type}; charset=utf-8`);
    c.header("cache-control", "public, max-age=3600");
    return c.body(asset.body);
  });
  return app;
}
