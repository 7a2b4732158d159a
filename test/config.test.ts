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

  it("never echoes a password from a DATABASE_URL it refuses, whatever its shape", () => {
    for (const url of [
      "postgress://app:Hunter2@Secret@db/app", // an unescaped @ in the password
      "postgress://:Hunter2Secret@db/app", // a password without a user
      "postgress://app:Hunter2/Secret@db/app", // an unescaped / in the password
      "postgress://app@db/app?password=Hunter2Secret", // the password as a parameter
      "host=db user=app password=Hunter2Secret dbname=app", // libpq's key=value form, which psql takes
      "host=db user=app password='Hunter2 Secret' dbname=app",
    ]) {
      let message = "";
      try {
        loadConfig({ DATABASE_URL: url });
      } catch (caught) {
        message = (caught as Error).message;
      }
      expect(message, url).toMatch(/DATABASE_URL must be a PostgreSQL connection URL/);
      expect(message, url).not.toMatch(/Hunter2|Secret/);
    }
  });

  it("makes the dashboard's pages need its credential unless PGJOBS_DASHBOARD_PAGES=public", () => {
    expect(loadConfig({}).dashboard.pages).toBe("signed-in");
    expect(loadConfig({ PGJOBS_DASHBOARD_PAGES: "public" }).dashboard.pages).toBe("public");
    expect(loadConfig({ PGJOBS_DASHBOARD_PAGES: "signed-in" }).dashboard.pages).toBe("signed-in");
    expect(() => loadConfig({ PGJOBS_DASHBOARD_PAGES: "bogus" })).toThrow(
      /PGJOBS_DASHBOARD_PAGES must be signed-in .* or public .*\(got "bogus"\)/,
    );
  });

  it("treats an empty variable as unset", () => {
    expect(loadConfig({ DATABASE_URL: "", PGJOBS_CONCURRENCY: "" }).concurrency).toBe(4);
  });
});
