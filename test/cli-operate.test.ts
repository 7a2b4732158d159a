import { hostname } from "node:os";
/**
 * The operator CLI as a person (and a script) runs it: every subcommand as a real subprocess
 * against real PostgreSQL, in human and --json form (stdout parsed as one JSON document), and
 * the expected failures each as one line on stderr with its own exit code.
 */
import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COMMANDS } from "../src/cli/command-list.ts";
import { EXIT } from "../src/cli/exit-codes.ts";
import { waitForResult } from "../src/history/wait-for-result.ts";
import { databaseUrl } from "../src/testing/test-database.ts";
import { type CliResult, cleanEnv, runCli } from "./support/cli.ts";
import { testServer, useTestDatabase } from "./support/database.ts";
import { useWorkers } from "./support/worker.ts";

const database = useTestDatabase();
const startWorker = useWorkers();

const env = () => cleanEnv({ DATABASE_URL: database().url });
const cli = (...args: string[]) => runCli(args, env());

/** Enqueues through graphile-worker's SQL door, which does not validate: a payload the task will reject. */
async function addInSql(task: string, payload: unknown, runAt?: Date): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    select id from graphile_worker.add_job(${task}, ${JSON.stringify(payload)}::json,
      run_at => ${runAt ?? null}::timestamptz)`.execute(database().db);
  return rows[0]!.id;
}

/** The answer alone on stdout: it parses as one JSON document. */
function json<T = Record<string, unknown>>(result: CliResult): T {
  expect(result.stdout.trim().split("\n")).toHaveLength(1);
  return JSON.parse(result.stdout) as T;
}

/** An expected failure: one line on stderr that names the problem, no stack, nothing on stdout. */
function expectOneLine(result: CliResult, code: number, text: string | RegExp): void {
  const lines = result.stderr.split("\n").filter((line) => line.trim() !== "");
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(text);
  expect(result.stderr).not.toMatch(/^\s+at /m);
  expect(result.stdout).toBe("");
  expect(result.code).toBe(code);
}

let dead: string; // rejected: out of attempts, left in the queue
let later: string; // scheduled for 2030
let pruned: string[]; // succeeded, their history made 10 days old

beforeAll(async () => {
  await startWorker(database());
  dead = await addInSql("pgjobs__ping", { note: "no message" });
  expect(await waitForResult(database().pool, dead, { timeoutMs: 20_000 })).toMatchObject({ state: "rejected" });
  pruned = [];
  for (const message of ["a", "b", "c"]) {
    const id = await addInSql("pgjobs__ping", { message });
    expect(await waitForResult(database().pool, id, { timeoutMs: 20_000 })).toMatchObject({ state: "succeeded" });
    pruned.push(id);
  }
  await sql`update pgjobs.job_runs set finished_at = now() - interval '10 days', started_at = now() - interval '10 days'
             where job_id = any(${pruned}::bigint[])`.execute(database().db);
  later = await addInSql("pgjobs__ping", { message: "later" }, new Date("2030-01-01T00:00:00Z"));
});

describe("pgjobs status, workers, cron, health", () => {
  it("status: queues by state, the oldest waiting, the workers alive", async () => {
    const human = await cli("status");
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/QUEUE\s+WAITING\s+SCHEDULED\s+RUNNING\s+RETRYING\s+DEAD\s+OLDEST WAITING/);
    expect(human.stdout).toMatch(/\(no queue\)\s+0\s+1\s+0\s+0\s+1\s/);
    expect(human.stdout).toMatch(/Workers: 1 alive/);
    expect(human.stdout).toContain("Dead jobs: 1 out of attempts");
    const report = json<{ totals: { scheduled: number; failed: number }; workers: { alive: number } }>(
      await cli("status", "--json"),
    );
    expect(report.totals).toMatchObject({ scheduled: 1, failed: 1 });
    expect(report.workers.alive).toBe(1);
  });

  it("workers: each worker's heartbeat and what it runs", async () => {
    const human = await cli("workers");
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/WORKER\s+STATE\s+HOST:PID\s+HEARTBEAT/);
    expect(human.stdout).toMatch(/running\s+\S+:\d+\s+\d+ s ago/);
    const workers = json<Array<{ state: string; running: unknown[] }>>(await cli("workers", "--json"));
    expect(workers.filter((worker) => worker.state === "running")).toHaveLength(1);
  });

  it("cron: each crontab item in words (UTC), its last and next run", async () => {
    const human = await cli("cron");
    expect(human.code).toBe(0);
    expect(human.stdout).toContain("pgjobs__prune_history");
    expect(human.stdout).toContain("At 17 minutes past the hour");
    const items = json<Array<{ task: string; nextTick: string; verdict: string }>>(await cli("cron", "--json"));
    const prune = items.find((item) => item.task === "pgjobs__prune_history");
    expect(new Date(prune!.nextTick).getUTCMinutes()).toBe(17);
    expect(prune!.verdict).toBe("unknown"); // the test worker runs no crontab
  });

  it("health: exit 0 with a worker heartbeating; JSON says which checks passed", async () => {
    const human = await cli("health");
    expect(human.code).toBe(0);
    expect(human.stdout).toContain("ok   workers: a heartbeat");
    const report = json<{ ok: boolean; heartbeat: { ok: boolean } }>(await cli("health", "--json"));
    expect(report).toMatchObject({ ok: true, heartbeat: { ok: true } });
  });

  it("health --this-host: counts only this host's workers (a container's own, under --scale)", async () => {
    const here = await cli("health", "--this-host");
    expect(here.code).toBe(0);
    expect(here.stdout).toContain(`on ${hostname()}`);
    // The same worker, as if it ran in another container: a heartbeat elsewhere does not count.
    const { rows } = await sql<{ id: string; host: string }>`
      update pgjobs.workers set host = 'another-container' where state = 'running' returning id, host`.execute(
      database().db,
    );
    try {
      const elsewhere = await cli("health", "--this-host");
      expect(elsewhere.code).toBe(1);
      expect(elsewhere.stderr.trim().split("\n")).toEqual([
        `FAIL workers: no worker on this host (${hostname()}) is alive: is its \`pgjobs worker\` running?`,
      ]);
      expect((await cli("health")).code).toBe(0);
    } finally {
      await sql`update pgjobs.workers set host = ${hostname()} where id = any(${rows.map((row) => row.id)}::text[])`.execute(
        database().db,
      );
    }
  });

  it("names every command in its help, so the list other tools check is the one it runs", async () => {
    const help = await cli("--help");
    for (const name of COMMANDS) expect(help.stdout).toMatch(new RegExp(`^  ${name}\\b`, "m"));
  });
});

describe("pgjobs jobs and failures", () => {
  it("jobs: filtered by task, state, queue and age", async () => {
    const human = await cli("jobs", "--task", "pgjobs__ping", "--state", "scheduled");
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^\\s*${later}\\s+pgjobs__ping\\s+scheduled\\s+0/3\\s+due in`, "m"));
    const rows = json<Array<{ job_id: string }>>(await cli("jobs", "--state", "rejected", "--since", "1h", "--json"));
    expect(rows.map((row) => row.job_id)).toEqual([dead]);
    const none = await cli("jobs", "--queue", "nobody-uses-this");
    expect(none.stdout).toContain("No jobs match (queue nobody-uses-this)");
    expectOneLine(await cli("jobs", "--state", "sleeping"), EXIT.USAGE, /Unknown state "sleeping"\. Choose one of/);
    expectOneLine(await cli("jobs", "--since", "yesterday"), EXIT.USAGE, /--since "yesterday" is not an age/);
    // Ages past any date PostgreSQL or JavaScript can hold are a usage error, not a crash.
    for (const age of ["5000000w", "99999999999999w"]) {
      expectOneLine(await cli("jobs", "--since", age), EXIT.USAGE, /--since ".*" is more than 100 years/);
    }
  });

  it("failures: dead jobs with what to do, and the day's failed attempts", async () => {
    const human = await cli("failures");
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^\\s*${dead}\\s+pgjobs__ping\\s+rejected\\s+1/1`, "m"));
    expect(human.stdout).toContain("pgjobs retry <job> --payload '<json>'");
    expect(human.stdout).toContain("pgjobs cancel <job>");
    const report = json<{ dead: Array<{ job_id: string; state: string }> }>(await cli("failures", "--json"));
    expect(report.dead).toEqual([expect.objectContaining({ job_id: dead, state: "rejected" })]);
  });
});

describe("pgjobs result, retry, prune", () => {
  it("result: 0 succeeded, 1 failed, 4 not finished yet, 5 no such job", async () => {
    expect((await cli("result", pruned[0]!)).code).toBe(EXIT.OK);
    const failed = await cli("result", dead, "--json");
    expect(failed.code).toBe(EXIT.FAILURE);
    expect(json(failed)).toMatchObject({ state: "rejected", final: true });
    const waiting = await cli("result", later);
    expect(waiting.code).toBe(EXIT.NOT_FINISHED);
    expect(waiting.stderr).toContain("has not finished (scheduled)");
    expect(json(await cli("result", later, "--json"))).toMatchObject({ state: "scheduled", final: false });
    expectOneLine(await cli("result", "987654321"), EXIT.NOT_FOUND, /There is no job 987654321/);
  });

  it("retry --payload: refused by the task's schema (unknown keys too); accepted, the job runs with it", async () => {
    const job = await addInSql("pgjobs__ping", { note: "no message" });
    await waitForResult(database().pool, job, { timeoutMs: 20_000 });
    const typo = await cli("retry", job, "--payload", '{"message":"fixed","mesage":"typo"}');
    expect(typo.code).toBe(EXIT.FAILURE);
    expect(typo.stderr).toContain('Payload for task "pgjobs__ping" is invalid');
    expect(typo.stderr).toContain("mesage");
    const done = json<{ outcome: string }>(await cli("retry", job, "--payload", '{"message":"fixed"}', "--json"));
    expect(done.outcome).toBe("rescheduled");
    expect(await waitForResult(database().pool, job, { timeoutMs: 20_000 })).toMatchObject({
      state: "succeeded",
      result: { pong: "fixed" },
    });
    const audit = await database()
      .db.selectFrom("pgjobs.dashboard_actions")
      .select(["actor", "action"])
      .where(sql<boolean>`job_ids @> array[${job}::bigint]`)
      .execute();
    expect(audit).toEqual([{ actor: expect.stringMatching(/^cli:/) as string, action: "retry" }]);
    expectOneLine(await cli("retry", "987654321"), EXIT.NOT_FOUND, /There is no job 987654321/);
  });

  it("retry --state: every matching job, with progress on stderr and one JSON document on stdout", async () => {
    const jobs = [await addInSql("pgjobs__ping", { bad: 1 }), await addInSql("pgjobs__ping", { bad: 2 })];
    for (const job of jobs) await waitForResult(database().pool, job, { timeoutMs: 20_000 });
    const result = await cli("retry", "--state", "rejected", "--task", "pgjobs__ping", "--json");
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/^retry: \d+ job\(s\) so far \(\d+ rescheduled\)$/m);
    const summary = json<{ jobs: number; outcomes: Record<string, number> }>(result);
    expect(summary.jobs).toBeGreaterThanOrEqual(3); // these two and the dead one
    expect(summary.outcomes.rescheduled).toBe(summary.jobs);
    expectOneLine(await cli("retry", "--task", "pgjobs__ping"), EXIT.USAGE, /Expected one job id/);
  });

  it("prune: deletes history past retention in batches, with progress", async () => {
    const human = await cli("prune", "--batch-size", "1");
    expect(human.code).toBe(0);
    expect(human.stderr).toMatch(/^prune: batch 1, 1 attempts deleted so far$/m);
    expect(human.stderr).toMatch(/^prune: batch 3, 3 attempts deleted so far$/m);
    expect(human.stdout).toContain("Pruned 3 finished attempts in 4 batch(es)");
    const { rows } = await sql`select 1 from pgjobs.job_runs where job_id = any(${pruned}::bigint[])`.execute(
      database().db,
    );
    expect(rows).toEqual([]);
    expect(json(await cli("prune", "--json"))).toMatchObject({ deleted: 0 });
  });
});

describe("expected failures: one line, a distinct exit code, the stack only with --verbose", () => {
  let emptyName: string;
  let emptyUrl: string;
  beforeAll(async () => {
    emptyName = `pgjobs_unmigrated_${process.pid}_${Date.now()}`;
    const admin = new pg.Client(testServer().adminUrl);
    await admin.connect();
    await admin.query(`create database ${emptyName}`);
    await admin.end();
    emptyUrl = databaseUrl(testServer().adminUrl, emptyName);
  });
  afterAll(async () => {
    const admin = new pg.Client(testServer().adminUrl);
    await admin.connect();
    await admin.query(`drop database if exists ${emptyName} with (force)`);
    await admin.end();
  });

  const down = cleanEnv({ DATABASE_URL: "postgres://postgres@127.0.0.1:1/postgres" });

  it.each([["status"], ["jobs"], ["failures"], ["workers"], ["cron"], ["prune"], ["job", "1"], ["retry", "1"]])(
    "database down: pgjobs %s says where and what to check (exit 6)",
    async (...args) => {
      for (const form of [args, [...args, "--json"]]) {
        expectOneLine(
          await runCli(form, down),
          EXIT.DATABASE_UNREACHABLE,
          /^pgjobs: cannot reach PostgreSQL at 127\.0\.0\.1:1 \(connection refused\): is it running\? Check DATABASE_URL/,
        );
      }
    },
  );

  it("database down: health fails its database check (exit 6)", async () => {
    const result = await runCli(["health"], down);
    expectOneLine(result, EXIT.DATABASE_UNREACHABLE, /^FAIL database: .*ECONNREFUSED.*Check DATABASE_URL/);
  });

  it.each([["status"], ["jobs"], ["failures"], ["workers"], ["result", "1"], ["health"]])(
    "not migrated: pgjobs %s says to run pgjobs migrate (exit 7)",
    async (...args) => {
      const result = await runCli(args, cleanEnv({ DATABASE_URL: emptyUrl }));
      if (args[0] === "health") {
        expect(result.code).toBe(EXIT.NOT_MIGRATED);
        expect(result.stderr).toMatch(/^FAIL migrations: .*run `pgjobs migrate`/m);
      } else {
        expectOneLine(result, EXIT.NOT_MIGRATED, /is not migrated .*: run `pgjobs migrate`/);
      }
    },
  );

  it("bad options are usage errors before the database (exit 2)", async () => {
    expectOneLine(
      await cli("add", "pgjobs__ping", '{"message":"x"}', "--max-attempts", "0"),
      EXIT.USAGE,
      /--max-attempts must be a whole number from 1 to 100 \(got 0\)/,
    );
    expectOneLine(
      await cli("add", "pgjobs__ping", '{"message":"x"}', "--priority", "99999999999"),
      EXIT.USAGE,
      /--priority must be a whole number from -1000 to 1000 \(got 99999999999\)/,
    );
    expectOneLine(await cli("status", "--frobnicate"), EXIT.USAGE, /Unknown option '--frobnicate'/);
    expectOneLine(await cli("jobs", "--limit", "0"), EXIT.USAGE, /--limit "0" must be a whole number from 1 to 1000/);
    expectOneLine(await cli("jobs", "--limit", "-1"), EXIT.USAGE, /--limit' argument is ambiguous \(a value starting/);
  });

  it("a DATABASE_URL that is not a URL says how to fix it, without echoing it (exit 2)", async () => {
    const result = await runCli(["status"], cleanEnv({ DATABASE_URL: "postgres://app:pa#ss@127.0.0.1:5432/x" }));
    expectOneLine(result, EXIT.USAGE, /DATABASE_URL is not a valid URL: percent-encode .*\(# as %23/);
    expect(result.stderr).not.toContain("pa#ss");
  });

  it("--verbose adds the stack", async () => {
    const result = await runCli(["status", "--verbose"], down);
    expect(result.code).toBe(EXIT.DATABASE_UNREACHABLE);
    expect(result.stderr).toMatch(/^\s+at /m);
  });
});

describe("--json is one document even when the task logs", () => {
  it("pgjobs run: the task's log line goes to stderr", async () => {
    const result = await runCli(
      ["run", "pgjobs__ping", '{"message":"loud"}', "--json"],
      cleanEnv({ DATABASE_URL: database().url, LOG_LEVEL: "info", LOG_FORMAT: "json" }),
    );
    expect(result.code).toBe(0);
    expect(json(result)).toEqual({ result: { pong: "loud" } });
    expect(result.stderr).toContain("pong: loud");
  });
});
