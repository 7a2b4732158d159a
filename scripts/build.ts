/**
 * `npm run build`: the package's dist/ — JavaScript and declarations from tsc
 * (tsconfig.build.json), plus every file under src/ that is not TypeScript (pgjobs' SQL
 * migrations), at the same relative paths, since the code finds them next to itself.
 */
import { spawnSync } from "node:child_process";
import { cpSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const dist = path.join(root, "dist");
const src = path.join(root, "src");
// The credits example app lives in src/app; it is this repository's, not the package's.
const notPackaged = path.join(src, "app");

rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const compiled = spawnSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.build.json")], { stdio: "inherit" });
if (compiled.status !== 0) process.exit(compiled.status ?? 1);

let copied = 0;
for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
  const file = path.join(entry.parentPath, entry.name);
  if (!entry.isFile() || file.endsWith(".ts") || file.startsWith(notPackaged + path.sep)) continue;
  cpSync(file, path.join(dist, path.relative(src, file)));
  copied += 1;
}
console.log(`dist/ built: tsc output and ${copied} asset file(s) from src/`);
