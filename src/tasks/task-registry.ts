/**
 * An app's tasks, as a value: looked up by name, with names that must be unique, and the types
 * that make `enqueue(db, "task", payload)` check the name and the payload at compile time.
 * The engine never imports an app's tasks; it is handed them (createPgJobs({ tasks })).
 */
import type { z } from "zod";
import type { TaskDefinition } from "./define-task.ts";

/** Any app's task list. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TaskList = readonly TaskDefinition<string, z.ZodType, any, any>[];

/** The names of a task list's tasks. */
export type TaskNameOf<Tasks extends TaskList> = Tasks[number]["name"];
/** The task of that name. */
export type TaskNamed<Tasks extends TaskList, Name extends TaskNameOf<Tasks>> = Extract<Tasks[number], { name: Name }>;
/** What a caller passes to enqueue (zod input: defaults may be left out). */
export type PayloadOf<Tasks extends TaskList, Name extends TaskNameOf<Tasks>> = z.input<
  TaskNamed<Tasks, Name>["payload"]
>;
/** What the task's run() returns. */
export type ResultOf<Tasks extends TaskList, Name extends TaskNameOf<Tasks>> = Awaited<
  ReturnType<TaskNamed<Tasks, Name>["run"]>
>;

export class UnknownTaskError extends Error {
  readonly taskName: string;
  constructor(taskName: string, known: readonly string[]) {
    const suggestion = closestName(taskName, known);
    super(
      `Unknown task "${taskName}".${suggestion ? ` Did you mean "${suggestion}"?` : ""} ` +
        `Tasks this app defines: ${known.join(", ") || "none"}. Check the name, or add the task to the app's task list.`,
    );
    this.name = "UnknownTaskError";
    this.taskName = taskName;
  }
}

export class TaskRegistry {
  readonly tasks: TaskList;
  private readonly byName: Map<string, TaskDefinition>;

  constructor(tasks: TaskList) {
    this.tasks = tasks;
    this.byName = new Map(tasks.map((task) => [task.name, task as TaskDefinition]));
    if (this.byName.size !== tasks.length) {
      const seen = new Set<string>();
      const twice = tasks.find((task) => seen.size === seen.add(task.name).size);
      throw new Error(`Two tasks share the name "${twice?.name}"; each task name must be unique.`);
    }
  }

  find(name: string): TaskDefinition | undefined {
    return this.byName.get(name);
  }

  /** The task, or an UnknownTaskError that suggests the closest name. */
  get(name: string): TaskDefinition {
    const task = this.byName.get(name);
    if (!task) throw new UnknownTaskError(name, this.names());
    return task;
  }

  names(): string[] {
    return [...this.byName.keys()].sort();
  }
}

function closestName(name: string, candidates: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const candidate of candidates) {
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
