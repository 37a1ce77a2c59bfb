/**
 * Typed errors. Every failure the service reports has a stable `code`; `src/http/errors.ts`
 * maps codes to HTTP statuses in one table. The crypto layer has its own classes
 * (src/crypto/errors.ts); the two that services also throw are re-exported here.
 */
import { CryptoError } from "./crypto/errors.ts";

export { CryptoError, DecryptionFailedError, KekMismatchError } from "./crypto/errors.ts";

export type ErrorCode =
  | "BAD_REQUEST"
  | "VALIDATION_FAILED"
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "ACCESS_DENIED"
  | "NOT_FOUND"
  | "CONFLICT"
  | "PAYLOAD_TOO_LARGE"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "RATE_LIMITED"
  | "DECRYPTION_FAILED"
  | "REAUTH_REQUIRED"
  | "UPSTREAM_FAILED"
  | "REFRESH_BACKOFF"
  | "KEY_UNAVAILABLE"
  | "SERVICE_UNAVAILABLE"
  | "CONFIG_INVALID"
  | "KEK_MISMATCH"
  | "KEYRING_INTEGRITY"
  | "INTERNAL";

export class ChronoError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown;
  constructor(code: ErrorCode, message: string, options?: { details?: unknown; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options?.details;
  }
}

export class BadRequestError extends ChronoError {
  constructor(message: string, details?: unknown) {
    super("BAD_REQUEST", message, { details });
  }
}

export class ValidationError extends ChronoError {
  constructor(message: string, details?: unknown) {
    super("VALIDATION_FAILED", message, { details });
  }
}

export class UnauthenticatedError extends ChronoError {
  /** The real reason stays in `cause` for logs; the client only ever sees the generic message. */
  constructor(cause?: unknown) {
    super("UNAUTHENTICATED", "missing or invalid API key", { cause });
  }
}

export class ForbiddenError extends ChronoError {
  constructor(message = "this API key's role does not allow this operation") {
    super("FORBIDDEN", message);
  }
}

export class NotFoundError extends ChronoError {
  constructor(what: string) {
    super("NOT_FOUND", `${what} not found`);
  }
}

export class ConflictError extends ChronoError {
  constructor(message: string, details?: unknown) {
    super("CONFLICT", message, { details });
  }
}

export class ReauthRequiredError extends ChronoError {
  constructor(message: string, details?: unknown) {
    super("REAUTH_REQUIRED", message, { details });
  }
}

export class UpstreamError extends ChronoError {
  constructor(
    message: string,
    details?: unknown,
    /** Sent as Retry-After when set. */
    readonly retryAfterSeconds?: number,
  ) {
    super("UPSTREAM_FAILED", message, { details });
  }
}

/** An expired token inside its refresh backoff window: no upstream attempt was made (503 + Retry-After). */
export class RefreshBackoffError extends ChronoError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super("REFRESH_BACKOFF", message, { details: { retryAfterSeconds } });
  }
}

export class KeyUnavailableError extends ChronoError {
  constructor(message: string) {
    super("KEY_UNAVAILABLE", message);
  }
}

/** Infrastructure failure (database down, audit write failed): the caller gets 503 and no secret. */
export class ServiceUnavailableError extends ChronoError {
  constructor(message = "service temporarily unavailable", cause?: unknown) {
    super("SERVICE_UNAVAILABLE", message, { cause });
  }
}

export class ConfigError extends ChronoError {
  constructor(message: string) {
    super("CONFIG_INVALID", message);
  }
}

/** A master_keys row whose keyring MAC fails, or whose public key is not its private key's: refused. */
export class KeyringIntegrityError extends ChronoError {
  constructor(message: string) {
    super("KEYRING_INTEGRITY", message);
  }
}

/** Too many requests from one client; `retryAfterSeconds` becomes the Retry-After header (429). */
export class RateLimitedError extends ChronoError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super("RATE_LIMITED", message, { details: { retryAfterSeconds } });
  }
}

/** A failure with a stable code and a message written for people (a startup or script refusal): one line, no stack. */
export function isExpectedError(err: unknown): err is ChronoError | CryptoError {
  return err instanceof ChronoError || err instanceof CryptoError;
}
