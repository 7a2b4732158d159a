/**
 * `pgjobs credits show <account-id>`: an account's credit, holds and recent ledger.
 * `pgjobs credits expire [--dry-run]`: run the expiry sweep now (what the crontab runs every
 * 3 hours), or with --dry-run count what it would expire without changing anything.
 * A command the credits app adds to the `pgjobs` CLI (pgjobs.config.ts).
 */
import type { Kysely } from "kysely";
import type { AppCommand } from "../../index.ts";
import type { CreditsDatabase } from "../credits/credits.tables.ts";
import {
  countDueHolds,
  getAccountSummary,
  getExpiryLag,
  type Hold,
  rearmExpiryTimer,
} from "../credits/credits.repository.ts";
import { expireDueHolds } from "../credits/expire-holds.service.ts";

const USAGE = "Usage: pgjobs credits show <account-id> [--json] | pgjobs credits expire [--dry-run] [--json]";

export const creditsCommand: AppCommand = {
  summary: "credits show <account-id> | credits expire [--dry-run]   an account's credit; expire due holds now",
  async run(args, { db, json }) {
    const credits = db as unknown as Kysely<CreditsDatabase>;
    const [action, ...rest] = args;
    if (action === "show" && rest.length === 1) return show(credits, rest[0]!, json);
    if (action === "expire" && rest.every((arg) => arg === "--dry-run")) {
      return expire(credits, { json, dryRun: rest.includes("--dry-run") });
    }
    console.error(`pgjobs: ${USAGE}`);
    return 2;
  },
};

async function show(db: Kysely<CreditsDatabase>, accountId: string, json: boolean): Promise<number> {
  const summary = await getAccountSummary(db, accountId);
  if (!summary) {
    console.error(
      `pgjobs: no credit account "${accountId}". An account is created by its first deposit; check the id.`,
    );
    return 1;
  }
  if (json) {
    console.log(JSON.stringify(summary));
    return 0;
  }
  const { account, holds, ledger } = summary;
  console.log(
    `Account ${account.id}: available ${account.available} (balance ${account.balance}, held ${account.held})`,
  );
  const active = holds.filter((hold) => hold.state === "active");
  console.log(`\nHolds (${active.length} active; newest ${holds.length} shown):`);
  for (const hold of holds) console.log(`  ${describeHold(hold)}`);
  if (holds.length === 0) console.log("  none");
  console.log(`\nLedger (latest ${ledger.length}, newest first):`);
  for (const entry of ledger) {
    const amount = entry.amount > 0 ? `+${entry.amount}` : String(entry.amount);
    const held = entry.heldChange > 0 ? `+${entry.heldChange}` : String(entry.heldChange);
    console.log(
      `  #${entry.id} ${entry.createdAt.toISOString()} ${entry.kind.padEnd(7)} balance ${amount.padStart(8)}` +
        ` held ${held.padStart(8)}${entry.holdId ? ` hold ${entry.holdId}` : ""}` +
        `${entry.idempotencyKey ? ` key ${entry.idempotencyKey}` : ""}`,
    );
  }
  if (ledger.length === 0) console.log("  none");
  return 0;
}

function describeHold(hold: Hold): string {
  const base = `hold ${hold.id}: ${hold.amount} ${hold.state}`;
  if (hold.state === "active") return `${base}, expires ${hold.expiresAt.toISOString()} (key ${hold.idempotencyKey})`;
  const captured = hold.state === "captured" ? ` ${hold.capturedAmount} of ${hold.amount}` : "";
  return `${base}${captured} at ${hold.resolvedAt?.toISOString() ?? "?"} (key ${hold.idempotencyKey})`;
}

async function expire(db: Kysely<CreditsDatabase>, args: { json: boolean; dryRun: boolean }): Promise<number> {
  if (args.dryRun) {
    const due = await countDueHolds(db);
    const lag = await getExpiryLag(db);
    if (args.json) {
      console.log(
        JSON.stringify({
          dryRun: true,
          ...due,
          oldestDueSeconds: lag.oldestDueSeconds,
          timerArmedAt: lag.timerArmedAt,
        }),
      );
    } else {
      console.log(
        `Dry run: ${due.holds} active hold(s) past their expiry on ${due.accounts} account(s), holding ` +
          `${due.credits} credits, would expire now (holds locked by a capture right now are skipped). Nothing was changed.`,
      );
      const timer = lag.timerArmedAt ? `fires next at ${lag.timerArmedAt.toISOString()}` : "is not armed";
      console.log(`Oldest due hold: ${lag.oldestDueSeconds.toFixed(1)} s past its expiry. The expiry timer ${timer}.`);
    }
    return 0;
  }
  const outcome = await expireDueHolds(db);
  // As the crontab sweep does: re-arm the timer, replacing its job if it was lost.
  const timerNextAt = await rearmExpiryTimer(db);
  if (args.json) {
    console.log(JSON.stringify({ ...outcome, timerNextAt }));
  } else {
    console.log(
      `Expired ${outcome.expired} credit hold(s) in ${outcome.batches} batch(es)` +
        (outcome.stoppedBy === "max_batches" ? "; stopped at the batch limit, run it again for the rest." : "."),
    );
  }
  return 0;
}
