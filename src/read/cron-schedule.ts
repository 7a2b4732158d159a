/**
 * The crontab as a person reads it: each item's schedule in words, its last and next tick (UTC,
 * as graphile-worker runs it), and whether the last tick fired. The items come from
 * graphile-worker's own parser, so the dashboard shows what the workers run.
 */
import { CronExpressionParser } from "cron-parser";
import cronstrue from "cronstrue";
import { parseCrontab } from "graphile-worker";
import type { CronStatusRow } from "./queries.ts";

/** graphile-worker's crontab line: five time fields, then the command. */
const CRONTAB_LINE = /^(\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+(.*)$/;
/** graphile-worker fires a tick within moments; until then an unfired tick is not a miss. */
const FIRING_GRACE_MS = 60_000;

export interface CronItemView {
  identifier: string;
  task: string;
  expression: string;
  /** "At 17 minutes past the hour", always of UTC times. */
  words: string;
  payload: Record<string, unknown> | null;
  queue: string | null;
  maxAttempts: number | null;
  priority: number | null;
  backfillMs: number;
  line: string;
}

export function parseCronItems(crontab: string): CronItemView[] {
  const items: CronItemView[] = [];
  for (const raw of crontab.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const match = CRONTAB_LINE.exec(line);
    // graphile-worker's parser says what is wrong with a line, with its number.
    const [parsed] = parseCrontab(line);
    if (!match || !parsed) throw new Error(`Could not read crontab line "${line}".`);
    const expression = match[1]!.replace(/\s+/g, " ");
    items.push({
      identifier: parsed.identifier,
      task: parsed.task,
      expression,
      words: describeSchedule(expression),
      payload: parsed.payload,
      queue: parsed.options.queueName ?? null,
      maxAttempts: parsed.options.maxAttempts ?? null,
      priority: parsed.options.priority ?? null,
      backfillMs: parsed.options.backfillPeriod,
      line,
    });
  }
  return items;
}

export function describeSchedule(expression: string): string {
  try {
    return `${cronstrue.toString(expression, { use24HourTimeFormat: true, verbose: true })} (UTC)`;
  } catch {
    return expression;
  }
}

/** The latest tick at or before `now`, and the first after it (UTC). */
export function ticksAround(expression: string, now: Date): { previous: Date; next: Date } {
  const previous = CronExpressionParser.parse(expression, { tz: "UTC", currentDate: new Date(now.getTime() + 1) })
    .prev()
    .toDate();
  const next = CronExpressionParser.parse(expression, { tz: "UTC", currentDate: now }).next().toDate();
  return { previous, next };
}

export type TickVerdict =
  /** The latest tick fired. */
  | "fired"
  /** The latest tick is moments old; the workers have not claimed it yet. */
  | "due"
  /** The latest tick passed and no worker fired it (no worker ran, or all were down). */
  | "missed"
  /** The item was first seen after its latest tick: nothing was due yet. */
  | "new"
  /** No worker has loaded this item: is a worker running with this crontab? */
  | "unknown";

export interface CronItemStatus extends CronItemView {
  previousTick: Date;
  nextTick: Date;
  lastExecution: Date | null;
  knownSince: Date | null;
  verdict: TickVerdict;
  /** How late the latest tick is, in seconds (0 once it fired or when nothing was due). */
  lagSeconds: number;
}

export function cronItemStatus(item: CronItemView, status: CronStatusRow | undefined, now: Date): CronItemStatus {
  const { previous, next } = ticksAround(item.expression, now);
  const lastExecution = status?.last_execution ?? null;
  let verdict: TickVerdict;
  if (!status) verdict = "unknown";
  else if (lastExecution && lastExecution.getTime() >= previous.getTime()) verdict = "fired";
  else if (status.known_since.getTime() > previous.getTime()) verdict = "new";
  else if (now.getTime() - previous.getTime() < FIRING_GRACE_MS) verdict = "due";
  else verdict = "missed";
  const lagSeconds = verdict === "missed" || verdict === "due" ? (now.getTime() - previous.getTime()) / 1000 : 0;
  return {
    ...item,
    previousTick: previous,
    nextTick: next,
    lastExecution,
    knownSince: status?.known_since ?? null,
    verdict,
    lagSeconds,
  };
}
