/**
 * What commands print. Standard output holds the answer only (with --json, exactly one JSON
 * document); progress and logs go to standard error, so `pgjobs … --json | jq` always parses.
 */
import os from "node:os";
import type { Actor } from "../operate/actions.ts";

/** Columns padded to their widest cell; numbers (right: true) aligned right. */
export function table(columns: Array<{ title: string; right?: boolean }>, rows: string[][]): string {
  const widths = columns.map((column, index) =>
    Math.max(column.title.length, ...rows.map((row) => (row[index] ?? "").length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, index) => (columns[index]?.right ? cell.padStart(widths[index]!) : cell.padEnd(widths[index]!)))
      .join("  ")
      .trimEnd();
  return [line(columns.map((column) => column.title)), ...rows.map(line)].join("\n");
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** A line of progress for a person watching a long operation; never on standard output. */
export function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Who acts from the command line, as the audit rows (pgjobs.dashboard_actions) record it. */
export function cliActor(): Actor {
  let user = "unknown";
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry (a container's numeric user): the host name still tells where
  }
  return { name: `cli:${user}@${os.hostname()}`, remoteAddr: null };
}
