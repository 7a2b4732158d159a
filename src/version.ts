/** pgjobs' own version, from its package.json: recorded with each worker and shown by the CLI. */
import { readFileSync } from "node:fs";

const packageJson = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

export const PGJOBS_VERSION = packageJson.version;
