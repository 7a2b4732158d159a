/** `pgjobs dashboard` as a process: it serves, and SIGTERM stops it cleanly (exit 0). */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { CLI, cleanEnv } from "../support/cli.ts";
import { useTestDatabase } from "../support/database.ts";
import { waitFor } from "../support/wait.ts";

const database = useTestDatabase();

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

describe("pgjobs dashboard", () => {
  it("serves the pages and /healthz, binds 127.0.0.1 without a credential, and stops on SIGTERM with exit 0", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, "dashboard"], {
      env: cleanEnv({
        DATABASE_URL: database().url,
        PGJOBS_DASHBOARD_PORT: String(port),
        PGJOBS_DASHBOARD_HOST: "0.0.0.0",
        LOG_LEVEL: "info",
        LOG_FORMAT: "json",
      }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, "exit").then(([code]) => code as number | null);
    try {
      await waitFor("the dashboard to listen", () => {
        if (child.exitCode !== null) throw new Error(`pgjobs dashboard exited early:\n${output}`);
        return output.includes("dashboard listening") ? true : undefined;
      });
      expect(output).toContain("listens on 127.0.0.1 only, not 0.0.0.0");
      const page = await fetch(`http://127.0.0.1:${port}/jobs`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("read-only (no credential configured)");
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(health.status).toBe(503); // no worker heartbeats in this database
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
