/**
 * Decides which PostgreSQL server this process uses: DATABASE_URL when set (and nothing else),
 * otherwise the embedded server under the data folder.
 */
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import { findRunningEmbeddedPostgres, startEmbeddedPostgres } from "./embedded.ts";

export interface DatabaseTarget {
  url: string;
  /** Stops what this process started (the embedded server); a no-op for DATABASE_URL. */
  release(): Promise<void>;
  embedded: boolean;
}

export async function resolveDatabase(config: Config, logger: Logger): Promise<DatabaseTarget> {
  if (config.databaseUrl) {
    return { url: config.databaseUrl, embedded: false, release: async () => {} };
  }
  const running = await findRunningEmbeddedPostgres(config.dataDir);
  if (running) {
    logger.debug({ dataDir: config.dataDir }, "using the embedded PostgreSQL another pgjobs process runs");
    return { url: running, embedded: true, release: async () => {} };
  }
  const server = await startEmbeddedPostgres(config.dataDir, logger);
  return { url: server.url, embedded: true, release: () => server.stop() };
}
