#!/usr/bin/env node
// Installed from npm, the package has only dist/ (Node does not strip types under node_modules);
// in a checkout of the repository the TypeScript sources run directly, so there is no build to forget.
import { existsSync } from "node:fs";

const source = new URL("../src/cli/main.ts", import.meta.url);
await import(existsSync(source) ? source.href : new URL("../dist/cli/main.js", import.meta.url).href);
