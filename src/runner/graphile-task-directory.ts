/**
 * graphile-worker's `taskDirectory` under a preset made by makePgjobsPreset. graphile-worker 0.18
 * takes the CLI's tasks from a directory or a single file, never from a preset or a plugin
 * (graphile/worker#438, #562), so the preset points it at this file: its default export is the
 * app's task list as pgjobs wraps it. graphile-worker imports it after the preset's init.
 */
import { presetTaskList } from "./preset.ts";

export default presetTaskList();
