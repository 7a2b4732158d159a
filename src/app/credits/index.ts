/** The credits domain: accounts, holds and the ledger (migrations/0003_credits.sql, 0004_credits_on_time.sql). */
export * from "./credits.errors.ts";
export * from "./credits.repository.ts";
export * from "./expire-holds.service.ts";
export * from "./expiry-timer.service.ts";
export * from "./credits.invariants.ts";
