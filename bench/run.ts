/**
 * `npm run bench [-- <name> [args...]]`: runs one benchmark, or all of them in turn. Each
 * compares pgjobs with bare graphile-worker (or a raw statement) in the same run, interleaved,
 * and prints medians and ratios as a markdown table for the README.
 *
 *   npm run bench                      every benchmark, default sizes
 *   npm run bench -- history 20000 5   one of them, with its own arguments (see its header)
 *   npm run bench -- credits --holds 1000000
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const benches: Record<string, string> = {
  history: "history-overhead.ts",
  credits: "credits-scale.ts",
  dashboard: "dashboard.ts",
  enqueue: "enqueue-bulk.ts",
};

const [name, ...args] = process.argv.slice(2);
const chosen = name === undefined || name === "all" ? Object.keys(benches) : [name];
for (const bench of chosen) {
  const file = benches[bench];
  if (!file) {
    console.error(`No benchmark "${bench}". Known: ${Object.keys(benches).join(", ")}, all.`);
    process.exit(2);
  }
  console.log(`\n## ${bench} (bench/${file})\n`);
  const result = spawnSync(process.execPath, [fileURLToPath(new URL(file, import.meta.url)), ...args], {
    stdio: "inherit",
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
