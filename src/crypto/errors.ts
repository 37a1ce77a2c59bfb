/**
 * The crypto layer's own errors, in the style of jose: each class has a stable `code` and knows
 * nothing of transport. src/http/errors.ts maps the codes to HTTP; the SDK re-exports the classes
 * it can surface. Decryption failures are deliberately uninformative (one message, cause kept).
 */

export type CryptoErrorCode =
  | "DECRYPTION_FAILED"
  | "KEK_MISMATCH"
  | "KEK_INVALID"
  | "INVALID_INPUT"
  | "SIGNATURE_INVALID";

export class CryptoError extends Error {
  readonly code: CryptoErrorCode;
  constructor(code: CryptoErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** One message whatever went wrong (bad tag, wrong key, header mismatch, wrong context). */
export class DecryptionFailedError extends CryptoError {
  constructor(cause?: unknown) {
    super("DECRYPTION_FAILED", "decryption failed", { cause });
  }
}

/** A wrapped master key that does not unwrap under this KEK (A256KW's integrity check failed). */
export class KekMismatchError extends CryptoError {
  constructor(message: string) {
    super("KEK_MISMATCH", message);
  }
}

/** A key-encryption key that is not 32 bytes in an accepted spelling. */
export class KekFormatError extends CryptoError {
  constructor(message: string) {
    super("KEK_INVALID", message);
  }
}

/** An argument outside what the primitive accepts (a slice beyond 2^32−1, a malformed kid, a bad length). */
export class CryptoInputError extends CryptoError {
  constructor(message: string) {
    super("INVALID_INPUT", message);
  }
}

/** A JWS that does not verify, or whose claims (version, slice, validity window) are not the expected ones. */
export class SignatureVerificationError extends CryptoError {
  constructor(message = "signature verification failed") {
    super("SIGNATURE_INVALID", message);
  }
}
