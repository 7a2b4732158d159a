/**
 * Times, durations, counts and error lines as a person reads them: shared by the dashboard's
 * pages and the CLI's tables, so both say "3 min ago" the same way.
 */

/** 2025-11-25 11:03:17 UTC */
export function utc(date: Date | null | undefined): string {
  if (!date) return "";
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** "12 s ago", "in 5 min", "3 h ago", "2 d ago". */
export function relative(date: Date, now: Date): string {
  const seconds = Math.round((now.getTime() - date.getTime()) / 1000);
  const magnitude = Math.abs(seconds);
  const amount =
    magnitude < 60
      ? `${magnitude} s`
      : magnitude < 3600
        ? `${Math.floor(magnitude / 60)} min`
        : magnitude < 86_400 * 2
          ? `${Math.floor(magnitude / 3600)} h ${Math.floor((magnitude % 3600) / 60)} min`
          : `${Math.floor(magnitude / 86_400)} d`;
  return seconds >= 0 ? `${amount} ago` : `in ${amount}`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function count(value: number): string {
  return value.toLocaleString("en-US");
}

/** The first line of an error, shortened for a table cell. */
export function firstLine(text: string | null | undefined, max = 120): string {
  if (!text) return "";
  const line = text.split("\n", 1)[0] ?? "";
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
