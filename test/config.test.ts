import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.ts";

describe("loadConfig", () => {
  it("applies defaults when nothing is set", () => {
    const config = loadConfig({}, "/srv/app");
    expect(config).toMatchObject({
      databaseUrl: undefined,
      concurrency: 4,
      dataDir: "/srv/app/.pgjobs",
      logLevel: "info",
      logFormat: "auto",
    });
  });

  it("lists every bad variable in one error, with what it should look like", () => {
    let error: unknown;
    try {
      loadConfig({
        DATABASE_URL: "mysql://root:hunter2@db/app",
        PGJOBS_CONCURRENCY: "lots",
        PGJOBS_POLL_INTERVAL_MS: "0",
        LOG_LEVEL: "verbose",
        LOG_FORMAT: "xml",
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems, message } = error as ConfigError;
    expect(problems).toHaveLength(5);
    expect(message).toContain("5 environment variables are wrong");
    expect(message).toMatch(/DATABASE_URL must be a PostgreSQL connection URL/);
    expect(message).toMatch(/PGJOBS_CONCURRENCY must be a whole number .*\(got "lots"\)/);
    expect(message).toMatch(/PGJOBS_POLL_INTERVAL_MS must be at least 1/);
    expect(message).toMatch(/LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent/);
    expect(message).toMatch(/LOG_FORMAT must be auto/);
    // The password in the bad URL is not echoed back into logs.
    expect(message).not.toContain("hunter2");
  });

  it("treats an empty variable as unset", () => {
    expect(loadConfig({ DATABASE_URL: "", PGJOBS_CONCURRENCY: "" }).concurrency).toBe(4);
  });
});
