/**
 * Errors the SDK throws, each with a stable `code` (jose style). ChronoKmsError carries the
 * server's code, status and request id; the local ones say what the SDK refused before or
 * instead of a request. Crypto failures are the crypto layer's classes (DecryptionFailedError,
 * CryptoInputError), re-exported from the SDK's index.
 */

export class ChronoKmsError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId?: string,
    readonly details?: unknown,
    /** The full response body (e.g. a denial's policyId and reason). */
    readonly body?: unknown,
  ) {
    super(message);
    this.name = "ChronoKmsError";
  }
}

/**
 * A policy denied the request (403 ACCESS_DENIED): `policyId`, `reason` and `reasonCode` say why.
 * Raised for both wire shapes: the time-slice denial body (`{ id, granted: false, policyId, reason,
 * reasonCode }`) and a token read's standard error body (`details.accessRequestId`, …).
 * A missing role is a plain ChronoKmsError with code FORBIDDEN, not this.
 */
export class AccessDeniedError extends ChronoKmsError {
  constructor(
    status: number,
    message: string,
    readonly accessRequestId: string,
    readonly policyId: string | null,
    readonly reason: string,
    requestId?: string,
    body?: unknown,
    /** Stable denial code (NOT_WHITELISTED, OUTSIDE_TIME_WINDOW, …), when the server sent one. */
    readonly reasonCode?: string,
  ) {
    super(status, "ACCESS_DENIED", message, requestId, undefined, body);
    this.name = "AccessDeniedError";
  }
}

/** A refusal by the SDK itself: a request was not made, or its answer was not trusted. */
export abstract class LocalRefusalError extends Error {
  abstract readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A ciphertext outside what a grant covers (another slice, another key version). */
export class OutsideGrantError extends LocalRefusalError {
  readonly code = "OUTSIDE_GRANT";
}

/** A slice public key whose signature does not verify against the pinned master key. */
export class UntrustedKeyError extends LocalRefusalError {
  readonly code = "UNTRUSTED_KEY";
}

/** A sealed grant whose protected header (`gid`, `ver`, `slices`) does not name the grant it came with. */
export class GrantMismatchError extends LocalRefusalError {
  readonly code = "GRANT_MISMATCH";
}
