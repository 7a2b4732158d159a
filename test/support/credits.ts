/** Helpers for the credits tests: the timer's state and jobs, and holds made in bulk. */
import { type Kysely, sql } from "kysely";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

export interface TimerState {
  armedAt: Date | null;
  jobId: string | null;
}

export async function timerState(db: AnyDb): Promise<TimerState> {
  const { rows } = await sql<{ armed_at: Date | null; job_id: string | null }>`
    select armed_at, job_id from credits.expiry_timer`.execute(db);
  return { armedAt: rows[0]?.armed_at ?? null, jobId: rows[0]?.job_id ?? null };
}

export interface QueuedJob {
  id: string;
  task: string;
  runAt: Date;
  priority: number;
  locked: boolean;
}

/** Every job in the queue for the credits tasks, soonest first. */
export async function creditJobs(db: AnyDb): Promise<QueuedJob[]> {
  const { rows } = await sql<{ id: string; task_identifier: string; run_at: Date; priority: number; locked: boolean }>`
    select id, task_identifier, run_at, priority, locked_at is not null as locked
      from graphile_worker.jobs where task_identifier like 'credits\\_\\_%'
     order by run_at, id`.execute(db);
  return rows.map((row) => ({
    id: String(row.id),
    task: row.task_identifier,
    runAt: row.run_at,
    priority: row.priority,
    locked: row.locked,
  }));
}

/**
 * Places `count` holds through credits.place_hold, a thousand per statement (server-side, so
 * thousands take seconds): `accounts` accounts get enough credit first. Holds expire `lifetime`
 * after each is placed. The tables are analyzed after the first thousand: a fresh test database
 * has no statistics (autovacuum is off here), and plans cached while the tables were empty
 * would scan them whole on every call as they grow.
 */
export async function placeHoldsInBulk(
  db: AnyDb,
  input: { prefix: string; accounts: number; count: number; lifetime: string },
): Promise<void> {
  await sql`
    select credits.deposit(${input.prefix} || '-' || a, ${input.count}::bigint, 'opening')
      from generate_series(0, ${input.accounts - 1}::int) a`.execute(db);
  for (let first = 1; first <= input.count; first += 1000) {
    const last = Math.min(first + 999, input.count);
    await sql`
      select credits.place_hold(${input.prefix} || '-' || (i % ${input.accounts}::int), 1,
                                clock_timestamp() + ${input.lifetime}::interval, 'h' || i)
        from generate_series(${first}::int, ${last}::int) i`.execute(db);
    if (first === 1) await sql`analyze credits.holds, credits.ledger_entries, credits.accounts`.execute(db);
  }
}

/** Waits (polling) until the database clock has passed every active hold's expiry on these accounts. */
export async function untilDue(db: AnyDb, prefix: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { rows } = await sql<{ due: boolean }>`
      select coalesce(bool_and(expires_at <= now()), true) as due from credits.holds
       where state = 'active' and account_id like ${prefix} || '-%'`.execute(db);
    if (rows[0]?.due) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for the holds of ${prefix}-* to fall due`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
