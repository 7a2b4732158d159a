/**
 * What stands between a worker and PostgreSQL. A worker needs a session of its own: LISTEN for
 * new jobs, named prepared statements, session advisory locks for migrations. A transaction-mode
 * pooler (Supabase's Supavisor on port 6543, PgBouncer with pool_mode=transaction) hands each
 * transaction to whichever server connection is free, so all three silently break there.
 */
import type pg from "pg";

export type ConnectionKind = "direct" | "session-pooler" | "transaction-pooler";

export interface ConnectionCheck {
  kind: ConnectionKind;
  /** Why we think so, for the log and for errors. */
  evidence: string;
}

/** Supavisor's transaction-mode port on Supabase. */
const SUPABASE_TRANSACTION_POOLER_PORT = "6543";

export async function detectConnectionKind(pool: pg.Pool, url: string): Promise<ConnectionCheck> {
  if (safePort(url) === SUPABASE_TRANSACTION_POOLER_PORT) {
    return { kind: "transaction-pooler", evidence: "port 6543 is Supabase's transaction-mode pooler (Supavisor)" };
  }
  const first = await pool.connect();
  const second = await pool.connect().catch((error: unknown) => {
    first.release();
    throw error;
  });
  try {
    const firstPid = await backendPid(first);
    // A direct server sends its own pid as the cancel key; a pooler sends a key of its own.
    if (firstPid === (first as pg.PoolClient & { processID?: number }).processID) {
      return { kind: "direct", evidence: "the server's backend pid matches the connection's cancel key" };
    }
    // Two clients open at the same time never share a backend unless the pooler lends one
    // server connection to whichever client runs a statement: transaction (or statement) mode.
    const servedFirst = new Set([firstPid]);
    const servedSecond = new Set<number>();
    for (let round = 0; round < 3; round++) {
      servedSecond.add(await backendPid(second));
      servedFirst.add(await backendPid(first));
    }
    if ([...servedSecond].some((pid) => servedFirst.has(pid))) {
      return {
        kind: "transaction-pooler",
        evidence: "two open connections were served by the same server backend (pool_mode=transaction)",
      };
    }
    return { kind: "session-pooler", evidence: "a pooler answers, and each connection keeps its own server session" };
  } finally {
    first.release();
    second.release();
  }
}

async function backendPid(client: pg.PoolClient): Promise<number> {
  const { rows } = await client.query<{ pid: number }>("select pg_backend_pid() as pid");
  return rows[0]!.pid;
}

function safePort(url: string): string | undefined {
  try {
    return new URL(url).port || undefined;
  } catch {
    return undefined;
  }
}

/** The one-line refusal a worker gives when pointed at a transaction pooler it was not told about. */
export function transactionPoolerRefusal(check: ConnectionCheck): string {
  return (
    `DATABASE_URL reaches PostgreSQL through a transaction-mode pooler (${check.evidence}). A worker needs its own ` +
    "session (LISTEN for new jobs, prepared statements, migration locks). Use the direct connection (Supabase: " +
    "db.<project>.supabase.co:5432) or the session pooler (port 5432 of the pooler host). To run through a " +
    "transaction pooler anyway, without LISTEN (polling instead) and without prepared statements, set " +
    "PGJOBS_TRANSACTION_POOLER=true and run `pgjobs migrate` over a direct connection first."
  );
}
