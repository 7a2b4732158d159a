/**
 * What a payload must be for every part of pgjobs to hold it: text PostgreSQL can store (no
 * NUL character, no lone UTF-16 surrogate: jsonb and text refuse both), nesting a person can
 * read, and a size within the task's cap. enqueue(), `pgjobs add` and the dashboard refuse a
 * payload that is not; the runner rejects (does not retry) a job that arrived by another door
 * (graphile_worker.add_job, quickAddJob) carrying one.
 */

/** Deepest nesting of objects and arrays a payload may have. */
export const MAX_PAYLOAD_DEPTH = 64;

/** Default cap on a payload's size, in bytes of JSON; a task may set its own (maxPayloadBytes). */
export const DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024;

export interface PayloadProblem {
  /** Where, as a path into the payload: `payload.items[3].note`. */
  path: string;
  problem: string;
}

/**
 * The first thing in `payload` PostgreSQL or pgjobs cannot hold, or undefined. Walks without
 * recursion, so a hostile 100,000-deep payload costs a loop, not the stack, and serialises the
 * payload to measure it only when its strings alone come near the cap.
 */
export function findUnstorable(
  payload: unknown,
  maxBytes = DEFAULT_MAX_PAYLOAD_BYTES,
  maxDepth = MAX_PAYLOAD_DEPTH,
): PayloadProblem | undefined {
  const stack: Array<{ value: unknown; path: string; depth: number }> = [{ value: payload, path: "payload", depth: 0 }];
  // A lower bound of the JSON size: every string, key and value takes at least this much.
  let atLeastBytes = 0;
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!;
    if (typeof value === "string") {
      atLeastBytes += value.length + 2;
      const problem = textProblem(value);
      if (problem) return { path, problem };
      continue;
    }
    atLeastBytes += 1;
    if (value === null || typeof value !== "object") continue;
    if (depth >= maxDepth) {
      return { path, problem: `is nested deeper than ${maxDepth} levels; flatten the payload` };
    }
    if (Array.isArray(value)) {
      for (let index = value.length - 1; index >= 0; index--) {
        stack.push({ value: value[index], path: `${path}[${index}]`, depth: depth + 1 });
      }
      continue;
    }
    for (const [key, item] of Object.entries(value)) {
      atLeastBytes += key.length + 3;
      const keyProblem = textProblem(key);
      if (keyProblem) return { path: `${path} key ${JSON.stringify(key.slice(0, 40))}`, problem: keyProblem };
      stack.push({ value: item, path: `${path}.${key}`, depth: depth + 1 });
    }
  }
  if (atLeastBytes > maxBytes / 4) {
    const bytes = payloadBytes(payload);
    if (bytes > maxBytes) {
      return {
        path: "payload",
        problem: `is ${bytes} bytes of JSON, over the task's cap of ${maxBytes} (maxPayloadBytes); store large data in a table and pass its id`,
      };
    }
  }
  return undefined;
}

function textProblem(text: string): string | undefined {
  if (text.includes("\u0000")) {
    return "contains a NUL character (\\u0000), which PostgreSQL text and jsonb cannot store";
  }
  if (!text.isWellFormed()) {
    return "contains a lone UTF-16 surrogate (text cut in the middle of a character such as an emoji), which PostgreSQL cannot store";
  }
  return undefined;
}

/** Size of the payload as JSON, in bytes (what graphile-worker stores); Infinity if it cannot be serialised. */
export function payloadBytes(payload: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(payload ?? null), "utf8");
  } catch {
    return Number.POSITIVE_INFINITY; // too deep for JSON.stringify's stack, or cyclic
  }
}

/** Text for a column: NUL and lone surrogates replaced, so an error message can always be stored. */
export function storableText(text: string): string {
  return text.toWellFormed().replaceAll("\u0000", "\uFFFD");
}
