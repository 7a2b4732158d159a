// Lint: typescript-eslint's recommended rules with type information, and the package's import
// boundaries. Formatting is prettier's job.
import path from "node:path";
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const src = path.join(import.meta.dirname, "src");
const app = path.join(src, "app");
const doors = [path.join(src, "index.ts"), path.join(src, "testing", "index.ts")];
const inside = (file, folder) => file === folder || file.startsWith(folder + path.sep);

/**
 * The credits app (src/app, pgjobs.config.ts) uses pgjobs as any app would: through the
 * package's doors (src/index.ts, src/testing/index.ts) only. The engine (the rest of src/) never
 * imports the app, nor tests, benches or scripts.
 */
const boundaries = {
  meta: { type: "problem", schema: [] },
  create(context) {
    const file = context.filename;
    const isApp = inside(file, app) || path.basename(file) === "pgjobs.config.ts";
    const isEngine = inside(file, src) && !inside(file, app);
    const check = (node) => {
      const source = node.source && node.source.value;
      if (typeof source !== "string" || !source.startsWith(".")) return;
      const target = path.resolve(path.dirname(file), source);
      if (isApp && inside(target, src) && !inside(target, app) && !doors.includes(target)) {
        context.report({
          node: node.source,
          message: `The app imports pgjobs only through its doors (src/index.ts, src/testing/index.ts), not ${path.relative(src, target)}: export what it needs from the door.`,
        });
      }
      if (isEngine && (inside(target, app) || !inside(target, src))) {
        context.report({
          node: node.source,
          message: `The engine (src/) never imports the app, tests or scripts (${path.relative(path.dirname(src), target)}).`,
        });
      }
    };
    return {
      ImportDeclaration: check,
      ExportNamedDeclaration: check,
      ExportAllDeclaration: check,
      ImportExpression: check,
    };
  },
};

/**
 * graphile-worker's private tables change between its versions: pgjobs reads and writes them only
 * in its SQL migrations (views such as pgjobs.queued_jobs, functions, triggers), the one seam to
 * update on an upgrade. TypeScript in the package uses those and graphile-worker's public API.
 */
const privateTables = {
  meta: { type: "problem", schema: [] },
  create(context) {
    if (!inside(context.filename, src) || inside(context.filename, app)) return {};
    const check = (node, text) => {
      if (/graphile_worker\s*\.\s*_private_/.test(text)) {
        context.report({
          node,
          message:
            "graphile-worker's private tables are reached only through pgjobs' SQL (src/db/migrations: views and functions); use those.",
        });
      }
    };
    return {
      Literal: (node) => typeof node.value === "string" && check(node, node.value),
      TemplateElement: (node) => check(node, node.value.raw),
    };
  },
};

export default tseslint.config(
  { ignores: ["node_modules/", "dist/", ".pgjobs/", ".ci/results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ["*.js", "bin/*.js"] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { pgjobs: { rules: { boundaries, privateTables } } },
    rules: {
      "pgjobs/boundaries": "error",
      "pgjobs/privateTables": "error",
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "@typescript-eslint/no-namespace": ["error", { allowDeclarations: true }],
      "@typescript-eslint/no-empty-object-type": ["error", { allowInterfaces: "with-single-extends" }],
    },
  },
  // Plain JavaScript (this file, bin/) has no types to check against.
  { files: ["**/*.js"], ...tseslint.configs.disableTypeChecked },
  { files: ["**/*.js"], languageOptions: { globals: { URL: "readonly", process: "readonly", console: "readonly" } } },
);
