/** Runs a command the app adds to the CLI (pgjobs.config.ts `commands`), with a database session. */
import type { AppCommand } from "../../project.ts";
import { type CliContext, openDatabase } from "../context.ts";

export async function appCommand(cli: CliContext, command: AppCommand, args: string[]): Promise<number> {
  const session = await openDatabase(cli, { poolSize: 2, applicationName: "pgjobs app command" });
  try {
    const json = args.includes("--json");
    return await command.run(
      args.filter((arg) => arg !== "--json"),
      { db: session.db, pool: session.pool, logger: cli.logger, json },
    );
  } finally {
    await session.close();
  }
}
