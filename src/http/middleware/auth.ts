/**
 * Authentication (`Authorization: Bearer ckms_…`) and role checks. Every refusal is the same
 * generic 401; the real reason goes to the AUTH_FAILED audit row and the debug log, never to the
 * caller, and the credential itself goes nowhere. Failures are rate limited per source address
 * before any database work.
 */
import type { MiddlewareHandler } from "hono";
import type { AuditSink } from "../../audit/types.ts";
import { AuthFailure, type ApiKeyService } from "../../access/api-keys.ts";
import type { AuthFailureLimiter } from "../../access/rate-limit.ts";
import type { Role } from "../../access/principal.ts";
import { ChronoError, ForbiddenError, UnauthenticatedError } from "../../errors.ts";
import { respondWithError } from "../errors.ts";
import type { AppEnv } from "../context.ts";
import { clientAddressOf } from "./request-context.ts";

export interface AuthDeps {
  apiKeys: ApiKeyService;
  limiter: AuthFailureLimiter;
  audit: AuditSink;
}

const BEARER = /^Bearer +(\S+) *$/i;

export function authenticate(deps: AuthDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization");
    const presented = header === undefined ? undefined : (BEARER.exec(header)?.[1] ?? "");

    // With no failure on record, no address can be limited: the peer address is not even looked up.
    const retryAfter = deps.limiter.idle() ? 0 : deps.limiter.retryAfter(clientAddressOf(c));
    if (retryAfter > 0) {
      // A key already verified in the last seconds proves it is not a guess: let it through
      // without database work, so a shared address under attack does not lock out its users.
      const known = presented ? deps.apiKeys.cached(presented) : null;
      if (!known) {
        deps.limiter.suppress(clientAddressOf(c));
        c.header("Retry-After", String(retryAfter));
        return respondWithError(
          new ChronoError("RATE_LIMITED", `too many failed authentication attempts; retry in ${retryAfter} s`),
          c,
        );
      }
      c.set("principal", known);
      return next();
    }

    try {
      c.set("principal", await deps.apiKeys.verify(presented));
    } catch (err) {
      if (!(err instanceof AuthFailure)) throw err;
      const address = clientAddressOf(c);
      deps.limiter.recordFailure(address);
      const suppressed = deps.limiter.takeSuppressed(address);
      try {
        await deps.audit.record({
          eventType: "AUTH_FAILED",
          actor: err.keyId ?? "anonymous",
          target: err.keyId ? `api-key:${err.keyId}` : null,
          success: false,
          details: {
            reason: err.reason,
            address,
            method: c.req.method,
            path: c.req.path,
            ...(suppressed > 0 ? { suppressedSinceLast: suppressed } : {}),
          },
        });
      } catch (auditErr) {
        // No secret is at stake in a refusal, so the caller still gets 401, not 503.
        c.get("log")?.error("could not audit a failed authentication", { err: auditErr });
      }
      throw new UnauthenticatedError(err.reason);
    }
    return next();
  };
}

/**
 * Admits keys holding at least one of `roles`. Roles do not imply each other: an admin key
 * manages requesters, policies, keys and audit, but reads tokens or asks for slice keys only if it
 * also holds `reader` (least privilege, as with Vault policies).
 */
export function requireRole(...roles: Role[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const principal = c.get("principal");
    if (!principal) throw new UnauthenticatedError("no principal (authenticate must run first)");
    if (!principal.roles.some((r) => roles.includes(r))) {
      throw new ForbiddenError(
        `this API key's roles (${principal.roles.join(", ") || "none"}) do not include ${roles.join(" or ")}`,
      );
    }
    return next();
  };
}
