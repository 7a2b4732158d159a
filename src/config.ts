/**
 * The only reader of the environment. Every setting pgjobs takes from its process environment is
 * declared here once, with its default and what a valid value looks like, so a bad deployment
 * fails at start with one message that lists every problem instead of one problem per restart.
 */
import path from "node:path";
import { parseEnv } from "node:util";
import { z } from "zod";

const postgresUrl = z
  .string()
  .trim()
  .refine((value) => /^postgres(ql)?:\/\//.test(value), {
    message: "must be a PostgreSQL connection URL such as postgres://user:password@host:5432/dbname",
  });

const positiveInt = (what: string, max: number) =>
  z.coerce
    .number({ error: `must be a whole number (${what})` })
    .int({ message: `must be a whole number (${what})` })
    .min(1, { message: `must be at least 1 (${what})` })
    .max(max, { message: `must be at most ${max} (${what})` });

/** Jobs one worker process runs at once, unless told otherwise (PGJOBS_CONCURRENCY). */
export const DEFAULT_CONCURRENCY = 4;
/** How often an idle worker looks for due jobs, unless told otherwise (PGJOBS_POLL_INTERVAL_MS). */
export const DEFAULT_POLL_INTERVAL_MS = 1000;

const environmentSchema = z.object({
  DATABASE_URL: postgresUrl.optional(),
  PGJOBS_CONCURRENCY: positiveInt("jobs run at once by one worker process", 1000).default(DEFAULT_CONCURRENCY),
  PGJOBS_POLL_INTERVAL_MS: positiveInt("how often an idle worker looks for due jobs", 600_000).default(
    DEFAULT_POLL_INTERVAL_MS,
  ),
  PGJOBS_SHUTDOWN_TIMEOUT_MS: positiveInt("how long SIGTERM lets running jobs finish", 3_600_000).default(10_000),
  PGJOBS_LIVENESS_TIMEOUT_MS: positiveInt("silence after which other workers reap a worker", 3_600_000)
    .min(1000, { message: "must be at least 1000 (a worker heartbeats several times within the bound)" })
    .default(30_000),
  PGJOBS_LOCAL_QUEUE_SIZE: positiveInt(
    "jobs fetched per trip to the database; 1 turns the local queue off",
    1000,
  ).optional(),
  PGJOBS_MIGRATION_LOCK_TIMEOUT_MS: positiveInt(
    "how long `pgjobs migrate` and a worker's start wait for another session's migration lock",
    3_600_000,
  ).default(60_000),
  PGJOBS_TRANSACTION_POOLER: z
    .enum(["true", "false"], { error: "must be true or false (is DATABASE_URL a transaction-mode pooler?)" })
    .default("false"),
  PGJOBS_DATA_DIR: z.string().trim().min(1).default(".pgjobs"),
  LOG_LEVEL: z
    .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
      error: "must be one of fatal, error, warn, info, debug, trace, silent",
    })
    .default("info"),
  LOG_FORMAT: z
    .enum(["auto", "json", "pretty"], { error: "must be auto (pretty on a terminal), json or pretty" })
    .default("auto"),
  TEST_DATABASE_URL: postgresUrl.optional(),
  PGJOBS_DASHBOARD_PORT: positiveInt("the port `pgjobs dashboard` listens on", 65_535).default(5555),
  PGJOBS_DASHBOARD_HOST: z.string().trim().min(1).default("127.0.0.1"),
  PGJOBS_DASHBOARD_TOKEN: z
    .string()
    .min(16, { message: "must be at least 16 characters (anyone who guesses it can retry and cancel jobs)" })
    .optional(),
  PGJOBS_DASHBOARD_USER: z.string().trim().min(1).optional(),
  PGJOBS_DASHBOARD_PASSWORD: z
    .string()
    .min(12, { message: "must be at least 12 characters (anyone who guesses it can retry and cancel jobs)" })
    .optional(),
  PGJOBS_DASHBOARD_PAGES: z
    .enum(["signed-in", "public"], {
      error:
        "must be signed-in (every page needs the credential) or public (pages readable by anyone who reaches the port; actions still need the credential)",
    })
    .default("signed-in"),
});

/**
 * Every variable pgjobs reads. A deployment file that sets another (a typo, a Celery leftover)
 * sets nothing: test/deployment.test.ts checks docker-compose.yml against this list.
 */
export const ENVIRONMENT_VARIABLES: readonly string[] = Object.keys(environmentSchema.shape);

export type Config = {
  /** Absent means: start the embedded PostgreSQL under `dataDir`. */
  databaseUrl: string | undefined;
  concurrency: number;
  pollIntervalMs: number;
  shutdownTimeoutMs: number;
  /** A worker silent for longer than this is reaped by the others. */
  livenessTimeoutMs: number;
  /** Jobs a worker fetches (and locks) per trip to the database. */
  localQueueSize: number;
  /** How long migrating (`pgjobs migrate`, a worker's start) waits for the migration lock before naming its holder. */
  migrationLockTimeoutMs: number;
  /** DATABASE_URL is a transaction-mode pooler: no LISTEN, no prepared statements, no migrations at start. */
  transactionPooler: boolean;
  /** Absolute path of the folder that holds the embedded PostgreSQL's data. */
  dataDir: string;
  logLevel: z.infer<typeof environmentSchema>["LOG_LEVEL"];
  logFormat: z.infer<typeof environmentSchema>["LOG_FORMAT"];
  testDatabaseUrl: string | undefined;
  /** `pgjobs dashboard`: where it listens and its credential (none: read-only, 127.0.0.1 only). */
  dashboard: {
    port: number;
    host: string;
    token: string | undefined;
    basic: { user: string; password: string } | undefined;
    /** With a credential: whether pages need it too ("signed-in") or only actions do ("public"). */
    pages: "signed-in" | "public";
  };
};

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(
      `pgjobs cannot start: ${problems.length} environment variable${problems.length === 1 ? " is" : "s are"} wrong.\n` +
        problems.map((problem) => `  - ${problem}`).join("\n") +
        "\nFix them in the environment (or .env of your process manager) and start again.",
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/**
 * Reads and validates the environment; throws one ConfigError naming every bad variable. `root`
 * is the project's folder (relative paths such as PGJOBS_DATA_DIR are resolved against it), and
 * `dotenv` the text of its .env file: its values apply where the environment has none.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, root = process.cwd(), dotenv?: string): Config {
  const merged = { ...(dotenv === undefined ? {} : parseEnv(dotenv)), ...env };
  // An empty variable is a common deployment slip; treat it as unset rather than as "".
  const present = Object.fromEntries(Object.entries(merged).filter(([, value]) => value !== undefined && value !== ""));
  const parsed = environmentSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const variable = String(issue.path[0]);
        const got = present[variable];
        return `${variable} ${issue.message}${got === undefined ? " (it is not set)" : ` (got ${JSON.stringify(redact(variable, got))})`}`;
      }),
    );
  }
  const values = parsed.data;
  if ((values.PGJOBS_DASHBOARD_USER === undefined) !== (values.PGJOBS_DASHBOARD_PASSWORD === undefined)) {
    throw new ConfigError([
      `PGJOBS_DASHBOARD_USER and PGJOBS_DASHBOARD_PASSWORD go together: set both for basic auth, or neither ` +
        `(only ${values.PGJOBS_DASHBOARD_USER === undefined ? "PGJOBS_DASHBOARD_PASSWORD" : "PGJOBS_DASHBOARD_USER"} is set)`,
    ]);
  }
  return {
    databaseUrl: values.DATABASE_URL,
    concurrency: values.PGJOBS_CONCURRENCY,
    pollIntervalMs: values.PGJOBS_POLL_INTERVAL_MS,
    shutdownTimeoutMs: values.PGJOBS_SHUTDOWN_TIMEOUT_MS,
    livenessTimeoutMs: values.PGJOBS_LIVENESS_TIMEOUT_MS,
    localQueueSize: values.PGJOBS_LOCAL_QUEUE_SIZE ?? defaultLocalQueueSize(values.PGJOBS_CONCURRENCY),
    migrationLockTimeoutMs: values.PGJOBS_MIGRATION_LOCK_TIMEOUT_MS,
    transactionPooler: values.PGJOBS_TRANSACTION_POOLER === "true",
    dataDir: path.resolve(root, values.PGJOBS_DATA_DIR),
    logLevel: values.LOG_LEVEL,
    logFormat: values.LOG_FORMAT,
    testDatabaseUrl: values.TEST_DATABASE_URL,
    dashboard: {
      port: values.PGJOBS_DASHBOARD_PORT,
      host: values.PGJOBS_DASHBOARD_HOST,
      token: values.PGJOBS_DASHBOARD_TOKEN,
      basic:
        values.PGJOBS_DASHBOARD_USER !== undefined && values.PGJOBS_DASHBOARD_PASSWORD !== undefined
          ? { user: values.PGJOBS_DASHBOARD_USER, password: values.PGJOBS_DASHBOARD_PASSWORD }
          : undefined,
      pages: values.PGJOBS_DASHBOARD_PAGES,
    },
  };
}

/**
 * Jobs fetched per trip: as many as the worker has slots, so a fast job rarely waits for a fetch,
 * and a busy worker holds back at most one batch from idle ones (bench/history-overhead.ts
 * measures the choice).
 */
export function defaultLocalQueueSize(concurrency: number): number {
  return Math.max(2, concurrency);
}

/**
 * Connection URLs, tokens and passwords are secrets; an error message must not print them. A URL
 * is refused for being malformed, so its password may hold an unescaped `@` or `/`: everything
 * from the user name to the last `@` goes, and so does any `password=` (a URL parameter, or
 * libpq's key=value form, which psql accepts and this does not).
 */
function redact(variable: string, value: string): string {
  if (variable.endsWith("_TOKEN") || variable.endsWith("_PASSWORD")) return "***";
  if (!variable.endsWith("_URL")) return value;
  return value
    .replace(/^([^:/?#@\s]*:\/\/[^:/@]*):.*@/s, "$1:***@")
    .replace(/(password\s*=\s*)('(?:\\.|[^'\\])*'|[^&\s]*)/gi, "$1***");
}
