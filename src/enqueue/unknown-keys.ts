/**
 * Keys a payload carries that its task's schema does not declare. zod's `z.object` strips them
 * without a word, so a typo'd optional field (`{ "dryrun": true }` for `dryRun`) would vanish and
 * the job would run with the default: pgjobs refuses them instead, at every door it owns
 * (enqueue(), `pgjobs add`, the worker). A schema that means to accept extra keys says so
 * (`z.looseObject`, `.catchall(...)`, `z.record`), or the task sets `allowUnknownKeys: true`.
 *
 * `_cron` at the top level is always allowed: graphile-worker's cron adds it to every payload
 * it enqueues.
 */
import type { z } from "zod";

/** What graphile-worker's cron adds to a payload (`{ ts, backfilled }`). */
export const CRON_PAYLOAD_KEY = "_cron";

export interface UnknownKeys {
  /** Where the object is, as a zod issue path (`[]` for the payload itself). */
  path: PropertyKey[];
  keys: string[];
}

/**
 * The undeclared keys in `value` (a payload as given, before parsing), object by object. Call it
 * only for a value the schema accepts: where a union has several options it follows the first
 * that accepts the value, as zod does.
 */
export function findUnknownKeys(schema: z.ZodType, value: unknown): UnknownKeys[] {
  const found: UnknownKeys[] = [];
  walk(schema, value, [], found);
  return found
    .map((entry) =>
      entry.path.length === 0 ? { ...entry, keys: entry.keys.filter((key) => key !== CRON_PAYLOAD_KEY) } : entry,
    )
    .filter((entry) => entry.keys.length > 0);
}

/** zod-style issues for them: `unrecognized_keys`, as z.strictObject reports. */
export function unknownKeyIssues(found: UnknownKeys[]): z.core.$ZodIssue[] {
  return found.map(({ path, keys }) => ({
    code: "unrecognized_keys",
    keys,
    path,
    input: undefined,
    message:
      `Unrecognized key${keys.length > 1 ? "s" : ""}: ${keys.map((key) => JSON.stringify(key)).join(", ")} ` +
      "(not in the task's schema: a typo? A task that accepts extra keys sets allowUnknownKeys: true)",
  }));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// zod's schema definitions, as far as this walk reads them.
interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  catchall?: z.ZodType;
  innerType?: z.ZodType;
  element?: z.ZodType;
  items?: z.ZodType[];
  rest?: z.ZodType | null;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  left?: z.ZodType;
  right?: z.ZodType;
  in?: z.ZodType;
  getter?: () => z.ZodType;
}

function walk(schema: z.ZodType, value: unknown, path: PropertyKey[], found: UnknownKeys[]): void {
  const def = schema._zod.def as unknown as Def;
  switch (def.type) {
    case "object": {
      if (!isPlainObject(value)) return;
      const shape = def.shape ?? {};
      const extra = Object.keys(value).filter((key) => !Object.hasOwn(shape, key));
      if (def.catchall === undefined) {
        if (extra.length > 0) found.push({ path, keys: extra });
      } else {
        for (const key of extra) walk(def.catchall, value[key], [...path, key], found);
      }
      for (const [key, field] of Object.entries(shape)) {
        if (Object.hasOwn(value, key)) walk(field, value[key], [...path, key], found);
      }
      return;
    }
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "readonly":
    case "catch":
    case "nonoptional":
      if (def.innerType) walk(def.innerType, value, path, found);
      return;
    case "array":
      if (Array.isArray(value) && def.element) {
        value.forEach((item, index) => walk(def.element!, item, [...path, index], found));
      }
      return;
    case "tuple":
      if (Array.isArray(value)) {
        value.forEach((item, index) => {
          const itemSchema = def.items?.[index] ?? def.rest ?? undefined;
          if (itemSchema) walk(itemSchema, item, [...path, index], found);
        });
      }
      return;
    case "record":
      if (isPlainObject(value) && def.valueType) {
        for (const [key, item] of Object.entries(value)) walk(def.valueType, item, [...path, key], found);
      }
      return;
    case "union": {
      const option = def.options?.find((candidate) => candidate.safeParse(value).success);
      if (option) walk(option, value, path, found);
      return;
    }
    case "intersection": {
      // A key either side declares is kept by zod: unknown only if unknown to both.
      const left: UnknownKeys[] = [];
      const right: UnknownKeys[] = [];
      if (def.left) walk(def.left, value, path, left);
      if (def.right) walk(def.right, value, path, right);
      for (const entry of left) {
        const other = right.find((candidate) => samePath(candidate.path, entry.path));
        const keys = other ? entry.keys.filter((key) => other.keys.includes(key)) : [];
        if (keys.length > 0) found.push({ path: entry.path, keys });
      }
      return;
    }
    case "pipe":
      // The input side reads the value as given; what a transform makes of it is the task's own.
      if (def.in) walk(def.in, value, path, found);
      return;
    case "lazy":
      if (def.getter) walk(def.getter(), value, path, found);
      return;
    default:
      return;
  }
}

function samePath(a: PropertyKey[], b: PropertyKey[]): boolean {
  return a.length === b.length && a.every((part, index) => part === b[index]);
}
