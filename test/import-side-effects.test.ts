/**
 * Importing pgjobs changes nothing in the process: not pg's type parsers (which the app's own
 * queries share), not its signal or exit handlers. Checked in a fresh Node process, since the
 * test runner has imported everything already.
 */
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const probe = `
  import pg from "pg";
  const parsers = [20, 1700, 1114, 1184].map((oid) => pg.types.getTypeParser(oid));
  const listeners = () => ["SIGINT", "SIGTERM", "exit", "beforeExit", "uncaughtException"].map((e) => process.listenerCount(e));
  const before = listeners();
  await import(${JSON.stringify(new URL("../src/index.ts", import.meta.url).href)});
  await import(${JSON.stringify(new URL("../src/testing/index.ts", import.meta.url).href)});
  console.log(JSON.stringify({
    parsersUnchanged: [20, 1700, 1114, 1184].every((oid, i) => pg.types.getTypeParser(oid) === parsers[i]),
    listenersBefore: before,
    listenersAfter: listeners(),
  }));
`;

describe("importing pgjobs", () => {
  it("leaves pg's type parsers and the process's handlers as they were", () => {
    const output = execFileSync(process.execPath, ["--input-type=module", "-e", probe], {
      cwd: new URL("..", import.meta.url).pathname,
      encoding: "utf8",
    });
    const seen = JSON.parse(output) as {
      parsersUnchanged: boolean;
      listenersBefore: number[];
      listenersAfter: number[];
    };
    expect(seen.parsersUnchanged).toBe(true);
    expect(seen.listenersAfter).toEqual(seen.listenersBefore);
  });
});
