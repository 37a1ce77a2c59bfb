/**
 * The one place errors become HTTP: a table from error code to status, and the single error body
 * `{ error: { code, message, details?, requestId } }`. A database that is unavailable right now
 * (connection lost, timeout) is a 503; anything else unknown is a generic 500, logged with its
 * cause but never echoed to the client.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ChronoError, RateLimitedError, RefreshBackoffError, UpstreamError, type ErrorCode } from "../errors.ts";
import { CryptoError, type CryptoErrorCode } from "../crypto/errors.ts";
import type { AppEnv } from "./context.ts";
import { isDatabaseUnavailable } from "../db/unavailable.ts";

export const statusByCode: Record<ErrorCode, ContentfulStatusCode> = {
  BAD_REQUEST: 400,
  VALIDATION_FAILED: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  ACCESS_DENIED: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  REAUTH_REQUIRED: 409,
  KEY_UNAVAILABLE: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  DECRYPTION_FAILED: 422,
  RATE_LIMITED: 429,
  UPSTREAM_FAILED: 502,
  REFRESH_BACKOFF: 503,
  SERVICE_UNAVAILABLE: 503,
  CONFIG_INVALID: 500,
  KEK_MISMATCH: 500,
  KEYRING_INTEGRITY: 500,
  INTERNAL: 500,
};

/** The wire code of each crypto error (src/crypto/errors.ts): the crypto layer knows nothing of HTTP. */
export const wireCodeOfCrypto: Record<CryptoErrorCode, ErrorCode> = {
  DECRYPTION_FAILED: "DECRYPTION_FAILED",
  KEK_MISMATCH: "KEK_MISMATCH",
  KEK_INVALID: "CONFIG_INVALID",
  INVALID_INPUT: "VALIDATION_FAILED",
  SIGNATURE_INVALID: "VALIDATION_FAILED",
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown; requestId?: string };
}

export function errorBody(code: ErrorCode, message: string, requestId?: string, details?: unknown): ErrorBody {
  return {
    error: { code, message, ...(details === undefined ? {} : { details }), ...(requestId ? { requestId } : {}) },
  };
}

/** Maps any thrown value to a response. Used as the app's onError and by middleware. */
export function respondWithError(err: unknown, c: Context<AppEnv>): Response {
  const requestId = c.get("requestId");
  if (err instanceof CryptoError) {
    const code = wireCodeOfCrypto[err.code];
    const status = statusByCode[code];
    if (status >= 500) c.get("log")?.error("request failed", { code, err, cause: err.cause });
    else if (err.cause !== undefined) c.get("log")?.debug("request refused", { code, cause: String(err.cause) });
    return c.json(errorBody(code, status >= 500 ? "internal error" : err.message, requestId), status);
  }
  if (err instanceof ChronoError) {
    const status = statusByCode[err.code];
    if (status >= 500) c.get("log")?.error("request failed", { code: err.code, err, cause: err.cause });
    else if (err.cause !== undefined)
      c.get("log")?.debug("request refused", { code: err.code, cause: String(err.cause) });
    // 5xx messages from infrastructure are kept generic; 4xx messages are written for the caller.
    if (
      err instanceof RateLimitedError ||
      err instanceof RefreshBackoffError ||
      (err instanceof UpstreamError && err.retryAfterSeconds !== undefined)
    ) {
      c.header("Retry-After", String(err.retryAfterSeconds));
    }
    const message =
      status >= 500 &&
      err.code !== "SERVICE_UNAVAILABLE" &&
      err.code !== "UPSTREAM_FAILED" &&
      err.code !== "REFRESH_BACKOFF"
        ? "internal error"
        : err.message;
    return c.json(errorBody(err.code, message, requestId, status >= 500 ? undefined : err.details), status);
  }
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    const code: ErrorCode =
      status === 413
        ? "PAYLOAD_TOO_LARGE"
        : status === 415
          ? "UNSUPPORTED_MEDIA_TYPE"
          : status === 401
            ? "UNAUTHENTICATED"
            : status < 500
              ? "BAD_REQUEST"
              : "INTERNAL";
    const message = status < 500 ? err.message || "bad request" : "internal error";
    return c.json(errorBody(code, message, requestId), status);
  }
  if (isDatabaseUnavailable(err)) {
    // Lost connection, timeout, server restarting: the caller may retry; nothing was released.
    c.get("log")?.error("database unavailable", { err });
    c.header("Retry-After", "1");
    return c.json(errorBody("SERVICE_UNAVAILABLE", "database unavailable; retry shortly", requestId), 503);
  }
  c.get("log")?.error("unhandled error", { err });
  return c.json(errorBody("INTERNAL", "internal error", requestId), 500);
}
