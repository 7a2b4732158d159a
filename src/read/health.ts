/** /healthz: the database answers, every migration is applied, and some worker heartbeats. */
import { sql } from "kysely";
import { pendingMigrations } from "../db/migrate.ts";
import type { Db } from "./queries.ts";

const DATABASE_TIMEOUT_MS = 3000;

export interface HealthReport {
  ok: boolean;
  database: { ok: boolean; error?: string };
  migrations: { ok: boolean; pending: string[]; error?: string };
  heartbeat: { ok: boolean; newestSecondsAgo: number | null; boundSeconds: number; error?: string };
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, limit]).finally(() => clearTimeout(timer));
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * `host`: count only workers on this host (a container's own worker, in its HEALTHCHECK: with
 * `--scale`, any other replica's heartbeat would otherwise keep a stuck one healthy).
 */
export async function checkHealth(
  db: Db,
  livenessTimeoutMs: number,
  appMigrationsDir?: string,
  host?: string,
): Promise<HealthReport> {
  const boundSeconds = livenessTimeoutMs / 1000;
  try {
    await withTimeout(sql`select 1`.execute(db), DATABASE_TIMEOUT_MS, "PostgreSQL");
  } catch (error) {
    const why = `database unreachable: ${message(error)}`;
    return {
      ok: false,
      database: { ok: false, error: message(error) },
      migrations: { ok: false, pending: [], error: why },
      heartbeat: { ok: false, newestSecondsAgo: null, boundSeconds, error: why },
    };
  }
  const [migrations, heartbeat] = await Promise.all([
    pendingMigrations(db, appMigrationsDir).then(
      (pending) => ({ ok: pending.length === 0, pending }),
      (error: unknown) => ({ ok: false, pending: [], error: message(error) }),
    ),
    sql<{ age: number | null }>`
      select extract(epoch from now() - max(w.last_seen_at))::float8 as age
        from pgjobs.workers w
       where w.state in ('running', 'stopping') and (${host ?? null}::text is null or w.host = ${host ?? null})`
      .execute(db)
      .then(
        ({ rows }) => {
          const age = rows[0]?.age ?? null;
          return { ok: age !== null && age <= boundSeconds, newestSecondsAgo: age, boundSeconds };
        },
        (error: unknown) => ({ ok: false, newestSecondsAgo: null, boundSeconds, error: message(error) }),
      ),
  ]);
  return { ok: migrations.ok && heartbeat.ok, database: { ok: true }, migrations, heartbeat };
}
