/**
 * Decides which PostgreSQL server this process uses: DATABASE_URL when set (and nothing else),
 * otherwise the embedded server of the data folder, shared with the project's other pgjobs
 * processes (embedded-shared.ts).
 */
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import { useEmbeddedPostgres } from "./embedded-shared.ts";

export interface DatabaseTarget {
  url: string;
  /** Done with the server: the embedded one stops when no other pgjobs process uses it. A no-op for DATABASE_URL. */
  release(): Promise<void>;
  embedded: boolean;
}

/** `narrate`: a long-running process (the worker) logs sharing the embedded server at info, not debug. */
export async function resolveDatabase(
  config: Config,
  logger: Logger,
  options: { narrate?: boolean } = {},
): Promise<DatabaseTarget> {
  if (config.databaseUrl) {
    return { url: config.databaseUrl, embedded: false, release: async () => {} };
  }
  const server = await useEmbeddedPostgres(config.dataDir, logger, options);
  return { url: server.url, embedded: true, release: () => server.release() };
}
