/**
 * Requests as Supabase's API makes them: a session of `authenticator` (PostgREST's login role)
 * that, per request, sets the role and the JWT's claims for one transaction.
 */
import pg from "pg";
import type { TestDatabase } from "../support/database.ts";

export type ApiRole = "anon" | "authenticated" | "service_role";

export interface Request {
  role: ApiRole;
  /** The JWT's claims; omitted: none at all (request.jwt.claims unset). */
  claims?: Record<string, unknown>;
}

/** An app user's claims, as Supabase's auth puts them in the JWT. */
export function userClaims(sub: string): Record<string, unknown> {
  return { sub, role: "authenticated", aud: "authenticated" };
}

export type Outcome =
  | { ok: true; rows: Array<Record<string, unknown>> }
  /** detail and hint as PostgreSQL sent them (PostgREST passes them on): undefined when absent. */
  | { ok: false; code: string; message: string; detail?: string; hint?: string };

export interface ApiSession {
  /** Runs one statement as one request (its own transaction, committed when it succeeds). */
  request(request: Request, statement: string, params?: unknown[]): Promise<Outcome>;
  /** Runs statements as one request in one transaction, rolled back at the end. */
  tryInRequest(request: Request, statements: Array<string | [string, unknown[]]>): Promise<Outcome[]>;
  close(): Promise<void>;
}

/**
 * A session of `authenticator`, as PostgREST holds one. SET SESSION AUTHORIZATION (from the test
 * server's superuser) rather than a login, so it works wherever the server asks for passwords.
 */
export async function apiSession(database: TestDatabase): Promise<ApiSession> {
  const client = new pg.Client({ connectionString: database.url, application_name: "pgjobs security test" });
  await client.connect();
  await client.query("set session authorization authenticator");
  const begin = async (request: Request) => {
    await client.query("begin");
    await client.query(`select set_config('role', $1, true)`, [request.role]);
    if (request.claims) {
      await client.query(`select set_config('request.jwt.claims', $1, true)`, [JSON.stringify(request.claims)]);
    }
  };
  const run = async (statement: string, params: unknown[] = []): Promise<Outcome> => {
    await client.query("savepoint attempt");
    try {
      const result = await client.query<Record<string, unknown>>(statement, params);
      await client.query("release savepoint attempt");
      return { ok: true, rows: result.rows };
    } catch (error) {
      await client.query("rollback to savepoint attempt");
      const { code, message, detail, hint } = error as {
        code?: string;
        message: string;
        detail?: string;
        hint?: string;
      };
      return { ok: false, code: code ?? "", message, detail, hint };
    }
  };
  return {
    async request(request, statement, params) {
      await begin(request);
      const outcome = await run(statement, params);
      await client.query(outcome.ok ? "commit" : "rollback");
      return outcome;
    },
    async tryInRequest(request, statements) {
      await begin(request);
      try {
        const outcomes: Outcome[] = [];
        for (const entry of statements) {
          const [statement, params] = typeof entry === "string" ? [entry, []] : entry;
          outcomes.push(await run(statement, params));
        }
        return outcomes;
      } finally {
        await client.query("rollback");
      }
    },
    close: () => client.end(),
  };
}
