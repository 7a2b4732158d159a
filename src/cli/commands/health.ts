/**
 * `pgjobs health`: exit 0 when this deployment can work (the database answers, every migration
 * is applied, a worker heartbeats within PGJOBS_LIVENESS_TIMEOUT_MS), else one line per failing
 * check and a nonzero code. The check /healthz makes, for a container's HEALTHCHECK.
 */
import { hostname } from "node:os";
import { checkHealth } from "../../read/health.ts";
import { type CliContext, withDatabase } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { print, printJson } from "../output.ts";

export async function healthCommand(
  cli: CliContext,
  args: { workers: boolean; thisHost: boolean; json: boolean },
): Promise<number> {
  const host = args.thisHost ? hostname() : undefined;
  const report = await withDatabase(cli, "pgjobs health", (session) =>
    checkHealth(session.db, cli.config.livenessTimeoutMs, cli.project.migrationsDir, host),
  );
  const heartbeatCounts = args.workers;
  const ok = report.database.ok && report.migrations.ok && (report.heartbeat.ok || !heartbeatCounts);
  const code = ok
    ? EXIT.OK
    : !report.database.ok
      ? EXIT.DATABASE_UNREACHABLE
      : !report.migrations.ok
        ? EXIT.NOT_MIGRATED
        : EXIT.FAILURE;
  if (args.json) {
    printJson({ ...report, ok, workersChecked: heartbeatCounts, host: host ?? null });
    return code;
  }
  const lines: string[] = [];
  if (!report.database.ok) {
    lines.push(`FAIL database: ${report.database.error ?? "unreachable"}: is PostgreSQL running? Check DATABASE_URL.`);
  } else {
    lines.push("ok   database: reachable");
    lines.push(
      report.migrations.ok
        ? "ok   migrations: all applied"
        : `FAIL migrations: ${report.migrations.error ?? `${report.migrations.pending.length} pending (${report.migrations.pending.join(", ")})`}: run \`pgjobs migrate\`.`,
    );
    const { newestSecondsAgo: age, boundSeconds: bound } = report.heartbeat;
    if (!heartbeatCounts) lines.push("--   workers: not checked (--no-workers)");
    else if (report.heartbeat.ok)
      lines.push(
        `ok   workers: a heartbeat ${Math.round(age ?? 0)} s ago (bound ${bound} s)${host ? ` on ${host}` : ""}`,
      );
    else {
      lines.push(
        age === null
          ? host
            ? `FAIL workers: no worker on this host (${host}) is alive: is its \`pgjobs worker\` running?`
            : `FAIL workers: no worker is alive: start one (\`pgjobs worker\`), or pass --no-workers to check the database only.`
          : `FAIL workers: the freshest heartbeat${host ? ` on ${host}` : ""} is ${Math.round(age)} s old (bound ${bound} s): are the workers stuck or gone?`,
      );
    }
  }
  // Failing checks on standard error too, so a log that keeps only stderr says why.
  for (const line of lines) (line.startsWith("FAIL") ? console.error : print)(line);
  return code;
}
