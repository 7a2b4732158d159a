/**
 * Migrations are forward-only: once a migration file has landed, users' databases have applied
 * it and the runner refuses a changed one, so it is never edited; a change is a new file.
 * CI runs this against the previous commit on main: every migration file there must still exist
 * with the same bytes (it may move, as pgjobs' own did into src/db/migrations/).
 *
 *   node scripts/check-migrations.ts [base]     (base: a git revision, default HEAD~1)
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

const MIGRATION_FOLDERS = ["migrations", "src/db/migrations"];
const repo = path.resolve(import.meta.dirname, "..");
const base = process.argv[2] ?? "HEAD~1";

const git = (...args: string[]) => execFileSync("git", args, { cwd: repo, encoding: "utf8" });
const digest = (text: string | Buffer) => createHash("sha256").update(text).digest("hex");

let baseFiles: string[];
try {
  baseFiles = git("ls-tree", "-r", "--name-only", base, "--", ...MIGRATION_FOLDERS)
    .split("\n")
    .filter((file) => file.endsWith(".sql"));
} catch {
  console.log(`check-migrations: no ${base} to compare with (a first commit or a shallow clone); nothing to check.`);
  process.exit(0);
}

// What the working tree has now, by content, wherever it lives.
const current = new Map<string, string[]>();
for (const folder of MIGRATION_FOLDERS) {
  let names: string[];
  try {
    names = readdirSync(path.join(repo, folder)).filter((name) => name.endsWith(".sql"));
  } catch {
    continue;
  }
  for (const name of names) {
    const hash = digest(readFileSync(path.join(repo, folder, name)));
    current.set(hash, [...(current.get(hash) ?? []), `${folder}/${name}`]);
  }
}

const problems: string[] = [];
for (const file of baseFiles) {
  const landed = digest(Buffer.from(git("show", `${base}:${file}`), "utf8"));
  if (current.has(landed)) continue;
  const samePath = [...current.values()].flat().includes(file);
  problems.push(
    samePath
      ? `${file} was edited after it landed (in ${base}).`
      : `${file} (in ${base}) is gone: a landed migration is never deleted.`,
  );
}

if (problems.length > 0) {
  console.error(
    `check-migrations: ${problems.join(" ")} Databases have applied it as it was; restore it ` +
      `(git checkout ${base} -- <file>) and write the change as a new migration.`,
  );
  process.exit(1);
}
console.log(`check-migrations: the ${baseFiles.length} migration(s) in ${base} are unchanged.`);
