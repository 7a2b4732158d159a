/**
 * Typed errors for the credits functions. The SQL functions in migrations/0003_credits.sql raise
 * SQLSTATE class CR with a message naming the account or hold and a hint saying what to do; this
 * module turns those into classes a caller can branch on. The message is the SQL one followed by
 * its hint, so a log line alone tells a person what happened and what to do next.
 */

/** SQLSTATEs raised by the credits functions (see the header of migrations/0003_credits.sql). */
export const CREDIT_SQLSTATE = {
  insufficientCredit: "CR001",
  accountNotFound: "CR002",
  holdNotFound: "CR003",
  holdAlreadyResolved: "CR004",
  idempotencyConflict: "CR005",
  invalidRequest: "CR006",
} as const;

export class CreditError extends Error {
  /** Stable code for programs: the SQLSTATE, or CR006 for requests refused before SQL. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CreditError";
    this.code = code;
  }
}

/** The account's available credit (balance − held) is less than the hold asked for. */
export class InsufficientCreditError extends CreditError {
  readonly accountId: string;
  readonly requested: number;
  readonly available: number;
  constructor(
    message: string,
    fields: { accountId: string; requested: number; available: number },
    options?: { cause?: unknown },
  ) {
    super(CREDIT_SQLSTATE.insufficientCredit, message, options);
    this.name = "InsufficientCreditError";
    this.accountId = fields.accountId;
    this.requested = fields.requested;
    this.available = fields.available;
  }
}

export class AccountNotFoundError extends CreditError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(CREDIT_SQLSTATE.accountNotFound, message, options);
    this.name = "AccountNotFoundError";
  }
}

export class HoldNotFoundError extends CreditError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(CREDIT_SQLSTATE.holdNotFound, message, options);
    this.name = "HoldNotFoundError";
  }
}

/** Capture or release of a hold that already left `active` in a way that forbids it. */
export class HoldAlreadyResolvedError extends CreditError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(CREDIT_SQLSTATE.holdAlreadyResolved, message, options);
    this.name = "HoldAlreadyResolvedError";
  }
}

/** An idempotency key (or a hold id) repeated with different parameters than its first use. */
export class IdempotencyConflictError extends CreditError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(CREDIT_SQLSTATE.idempotencyConflict, message, options);
    this.name = "IdempotencyConflictError";
  }
}

/** A bad amount, expiry, key or batch size. */
export class InvalidCreditRequestError extends CreditError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(CREDIT_SQLSTATE.invalidRequest, message, options);
    this.name = "InvalidCreditRequestError";
  }
}

interface PgErrorFields {
  code?: unknown;
  message?: unknown;
  detail?: unknown;
  hint?: unknown;
}

/** Maps a PostgreSQL error from a credits function to its typed error; anything else is returned as is. */
export function toCreditError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const { code, detail, hint } = error as PgErrorFields;
  if (typeof code !== "string" || !code.startsWith("CR")) return error;
  const message = typeof hint === "string" && hint !== "" ? `${error.message}. ${hint}` : error.message;
  const options = { cause: error };
  switch (code) {
    case CREDIT_SQLSTATE.insufficientCredit: {
      const fields = parseDetail(detail);
      return new InsufficientCreditError(
        message,
        {
          accountId: typeof fields.account_id === "string" ? fields.account_id : "",
          requested: Number(fields.requested),
          available: Number(fields.available),
        },
        options,
      );
    }
    case CREDIT_SQLSTATE.accountNotFound:
      return new AccountNotFoundError(message, options);
    case CREDIT_SQLSTATE.holdNotFound:
      return new HoldNotFoundError(message, options);
    case CREDIT_SQLSTATE.holdAlreadyResolved:
      return new HoldAlreadyResolvedError(message, options);
    case CREDIT_SQLSTATE.idempotencyConflict:
      return new IdempotencyConflictError(message, options);
    case CREDIT_SQLSTATE.invalidRequest:
      return new InvalidCreditRequestError(message, options);
    default:
      return new CreditError(code, message, options);
  }
}

function parseDetail(detail: unknown): Record<string, unknown> {
  if (typeof detail !== "string") return {};
  try {
    const parsed: unknown = JSON.parse(detail);
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
