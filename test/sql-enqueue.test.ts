/**
 * Enqueueing from SQL, as app triggers do: graphile_worker.add_job and pgjobs.enqueue both give
 * jobs that run and reach history; an unknown task name fails the statement that enqueued it.
 */
import { sql } from "kysely";
import { beforeAll, describe, expect, it } from "vitest";
import { waitForResult } from "../src/history/wait-for-result.ts";
import { testTasks } from "./fixtures/test-tasks.ts";
import { useTestDatabase } from "./support/database.ts";
import { waitFor } from "./support/wait.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

beforeAll(async () => {
  await sql`
    create table public.orders (id bigint generated always as identity primary key, via text not null, task text not null);
    create function public.orders_enqueue() returns trigger language plpgsql as $$
    begin
      if new.via = 'add_job' then
        perform graphile_worker.add_job(new.task, json_build_object('marker', 'order ' || new.id || ' via add_job'));
      else
        perform pgjobs.enqueue(new.task, jsonb_build_object('marker', 'order ' || new.id || ' via pgjobs.enqueue'));
      end if;
      return new;
    end $$;
    create trigger orders_enqueue after insert on public.orders for each row execute function public.orders_enqueue();
  `.execute(database().db);
  await startWorker(database(), { tasks: testTasks });
});

async function jobIdsFor(marker: string): Promise<string[]> {
  const rows = await database()
    .db.selectFrom("pgjobs.job_runs")
    .select("job_id")
    // History keeps payloads as json, as graphile-worker stored them.
    .where(sql`payload->>'marker'`, "=", marker)
    .execute();
  return rows.map((row) => row.job_id);
}

describe("enqueue from a trigger", () => {
  it.each(["add_job", "pgjobs.enqueue"])(
    "a job enqueued by a trigger with %s runs and appears in history",
    async (via) => {
      const order = await database()
        .db.insertInto("public.orders" as never)
        .values({ via, task: "test__record_effect" } as never)
        .returning("id" as never)
        .executeTakeFirstOrThrow();
      const marker = `order ${(order as { id: string }).id} via ${via}`;
      const [jobId] = await waitFor("the job's first run", async () => {
        const ids = await jobIdsFor(marker);
        return ids.length > 0 ? ids : undefined;
      });
      const outcome = await waitForResult(database().pool, jobId!, { timeoutMs: 20_000 });
      expect(outcome).toMatchObject({ task: "test__record_effect", state: "succeeded", result: { marker } });
      const effects = await database()
        .db.selectFrom("public.effects")
        .select("message")
        .where("job_id", "=", jobId!)
        .execute();
      expect(effects).toEqual([{ message: marker }]);
    },
  );

  it.each(["add_job", "pgjobs.enqueue"])("an unknown task name fails the inserting statement (%s)", async (via) => {
    const insert = database()
      .db.insertInto("public.orders" as never)
      .values({ via, task: "emails__sned" })
      .execute();
    await expect(insert).rejects.toThrow(/unknown task "emails__sned"/);
    const { rows } = await sql<{
      count: string;
    }>`select count(*) as count from public.orders where task = 'emails__sned'`.execute(database().db);
    expect(rows[0]?.count).toBe("0");
  });
});

describe("pgjobs.enqueue guards", () => {
  it("names the registered tasks when the name is unknown", async () => {
    await expect(sql`select pgjobs.enqueue('pgjobs__pong')`.execute(database().db)).rejects.toMatchObject({
      message: 'pgjobs.enqueue: unknown task "pgjobs__pong"',
      hint: expect.stringContaining("pgjobs__ping") as string,
      code: "22023",
    });
  });

  it("refuses a payload over the task's cap, and out-of-range options", async () => {
    const big = JSON.stringify({ message: "x".repeat(70 * 1024) });
    await expect(
      sql`select pgjobs.enqueue('pgjobs__ping', ${big}::jsonb)`.execute(database().db),
    ).rejects.toMatchObject({
      message: expect.stringMatching(/payload for "pgjobs__ping" is \d+ bytes; the cap is 65536 bytes/) as string,
      code: "54000",
    });
    await expect(
      sql`select pgjobs.enqueue('pgjobs__ping', '{"message":"x"}', max_attempts => 0)`.execute(database().db),
    ).rejects.toThrow("max_attempts must be between 1 and 100, got 0");
    await expect(sql`select pgjobs.enqueue('pgjobs__ping', '[1,2]')`.execute(database().db)).rejects.toThrow(
      "must be a JSON object, got array",
    );
  });

  it("passes job_key, queue, priority and run_at through to graphile-worker", async () => {
    const runAt = new Date(Date.now() + 3600_000);
    const { rows } = await sql<{ id: string }>`
      select pgjobs.enqueue('pgjobs__ping', '{"message":"keyed"}', ${runAt}, 'ping:keyed', 'pings', 5, 7) as id`.execute(
      database().db,
    );
    const { rows: jobs } = await sql<{
      key: string;
      queue_name: string;
      priority: number;
      max_attempts: number;
      run_at: Date;
    }>`select key, queue_name, priority, max_attempts, run_at from graphile_worker.jobs where id = ${rows[0]!.id}::bigint`.execute(
      database().db,
    );
    expect(jobs[0]).toMatchObject({ key: "ping:keyed", queue_name: "pings", priority: 5, max_attempts: 7 });
    expect(jobs[0]!.run_at.getTime()).toBe(runAt.getTime());
  });
});

describe("Supabase roles", () => {
  beforeAll(async () => {
    // Supabase's API roles, recreated on plain PostgreSQL (roles are per server, so maybe there).
    for (const role of ["anon", "authenticated"]) {
      await sql`
        do $$ begin
          create role ${sql.raw(role)} nologin;
        exception when duplicate_object then null;
        end $$`.execute(database().db);
    }
    await sql`grant usage on schema public to anon, authenticated`.execute(database().db);
  });

  it.each(["anon", "authenticated"])("%s cannot read history or the queue, nor enqueue", async (role) => {
    const attempts = [
      "select * from pgjobs.job_runs",
      "select * from pgjobs.job_status",
      "select * from graphile_worker._private_jobs",
      `select graphile_worker.add_job('pgjobs__ping', '{"message":"x"}')`,
      `select pgjobs.enqueue('pgjobs__ping', '{"message":"x"}')`,
      "select * from pgjobs.task_summary()",
    ];
    const client = await database().pool.connect();
    try {
      for (const statement of attempts) {
        await client.query("begin");
        await client.query(`set local role ${role}`);
        const outcome = await client.query(statement).then(
          () => "allowed",
          (error: Error) => error.message,
        );
        await client.query("rollback");
        expect(outcome, statement).toMatch(/permission denied/);
      }
    } finally {
      client.release();
    }
  });
});
