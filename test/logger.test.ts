/**
 * No payload reaches the log above debug: graphile-worker's per-job lines go to debug, and its
 * other lines that carry jobs (a failed completion batch, an event that threw) keep their level
 * with each job reduced to its id and task.
 */
import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { toGraphileLogger } from "../src/logger.ts";

const SECRET = "payload-secret-4f2a";

function capture(level: "info" | "debug") {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: toGraphileLogger(pino({ level }, stream)) };
}

const job = { id: "42", task_identifier: "pgjobs__ping", payload: { message: SECRET } };

describe("graphile-worker's lines through pgjobs' logger", () => {
  it("its per-job lines go to debug, without the payload", () => {
    const info = capture("info");
    info.logger.info(`Completed task 42 (pgjobs__ping, 1.00ms)`, { job, success: true });
    expect(info.lines).toEqual([]);
    const debug = capture("debug");
    debug.logger.info(`Completed task 42 (pgjobs__ping, 1.00ms)`, { job, success: true });
    expect(debug.lines).toHaveLength(1);
    expect(debug.lines[0]).toMatchObject({ level: 20, jobId: "42", task: "pgjobs__ping" });
    expect(JSON.stringify(debug.lines)).not.toContain(SECRET);
  });

  it("its error lines keep their level and lose the payloads of the jobs they name", () => {
    const { lines, logger } = capture("info");
    logger.error("Failed to complete jobs '42'", { fatalError: new Error("boom"), jobs: [job] });
    logger.error("Failed to fail jobs '42'", { fatalError: new Error("boom"), specs: [{ job }] });
    logger.error("Failed to release job '42'", { fatalError: new Error("boom"), job });
    logger.error("Emitting job:success raised an error", { eventName: "job:success", payload: { job } });
    expect(lines.map((line) => line.level)).toEqual([50, 50, 50, 50]);
    expect(lines[0]).toMatchObject({ jobIds: ["42"] });
    expect(lines[1]).toMatchObject({ jobIds: ["42"] });
    expect(lines[2]).toMatchObject({ jobId: "42", task: "pgjobs__ping" });
    expect(lines[3]).toMatchObject({ jobId: "42", eventName: "job:success" });
    expect(JSON.stringify(lines)).not.toContain(SECRET);
  });
});
