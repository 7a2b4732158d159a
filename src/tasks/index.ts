/**
 * The task registry: every task pgjobs can run. Adding a task is adding its module to `tasks`;
 * the worker's task list, `enqueue`'s types and the CLI's `add` all come from this list.
 */
import type { z } from "zod";
import { expireHoldTask } from "./credits/expire-hold.ts";
import { expireHoldsTask } from "./credits/expire-holds.ts";
import { expiryTimerTask } from "./credits/expiry-timer.ts";
import type { TaskDefinition } from "./define-task.ts";
import { pingTask } from "./pgjobs/ping.ts";
import { pruneHistoryTask } from "./pgjobs/prune-history.ts";

export const tasks = [pingTask, pruneHistoryTask, expireHoldsTask, expiryTimerTask, expireHoldTask] as const;

export type RegisteredTask = (typeof tasks)[number];
export type TaskName = RegisteredTask["name"];
export type TaskByName<Name extends TaskName> = Extract<RegisteredTask, { name: Name }>;
/** What a caller passes to enqueue (zod input: defaults may be omitted). */
export type PayloadOf<Name extends TaskName> = z.input<TaskByName<Name>["payload"]>;

type RegisteredPayloads = { [Task in RegisteredTask as Task["name"]]: z.input<Task["payload"]> };

declare global {
  namespace GraphileWorker {
    // graphile-worker's own addJob/add_job helpers are typed by this interface too.
    interface Tasks extends RegisteredPayloads {}
  }
}

const byName = new Map<string, TaskDefinition>(tasks.map((task) => [task.name, task as TaskDefinition]));
if (byName.size !== tasks.length) {
  throw new Error("Two tasks in src/tasks/index.ts share a name; each task name must be unique.");
}

export function findTask(name: string): TaskDefinition | undefined {
  return byName.get(name);
}

export function taskNames(): string[] {
  return [...byName.keys()].sort();
}

export class UnknownTaskError extends Error {
  readonly taskName: string;
  constructor(taskName: string) {
    const suggestion = closestName(taskName);
    super(
      `Unknown task "${taskName}".${suggestion ? ` Did you mean "${suggestion}"?` : ""} ` +
        `Registered tasks: ${taskNames().join(", ")}.`,
    );
    this.name = "UnknownTaskError";
    this.taskName = taskName;
  }
}

export function getTask(name: string): TaskDefinition {
  const task = findTask(name);
  if (!task) throw new UnknownTaskError(name);
  return task;
}

function closestName(name: string): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const candidate of byName.keys()) {
    const distance = editDistance(name, candidate);
    if (distance <= Math.max(2, Math.floor(candidate.length / 4)) && (!best || distance < best.distance)) {
      best = { name: candidate, distance };
    }
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        (previous[j] ?? 0) + 1,
        (current[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
