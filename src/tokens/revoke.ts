/**
 * Revocation at the provider before a token record is deleted (RFC 7009): the refresh token (or,
 * without one, the access token) is posted to the provider's revocation endpoint. The outcome is
 * a value for the TOKEN_DELETED audit row, never an exception: a provider that is down does not
 * keep the record unless the caller asked for `?revoke=required`.
 */
import type { AuditSink } from "../audit/types.ts";
import type { Config } from "../config.ts";
import type { KeyService } from "../keys/types.ts";
import type { Logger } from "../log.ts";
import { providerNameFor } from "./providers.ts";
import { openField, tokenTarget, type TokenRow } from "./record.ts";

export type RevokeMode = "best-effort" | "required" | "skip";

export interface Revocation {
  /** revoked: the provider answered 200; failed: it did not (reason says why); unsupported: no endpoint; skipped: ?revoke=skip. */
  outcome: "revoked" | "failed" | "unsupported" | "skipped";
  provider: string;
  /** Which token was sent (the refresh token revokes the whole grant at Google and most providers). */
  tokenTypeHint?: "refresh_token" | "access_token";
  /** OAuth error code, `http_<status>`, `timeout`, `network` or `decrypt`; never a token. */
  reason?: string;
}

export interface TokenRevokerDeps {
  keys: KeyService;
  audit: AuditSink;
  log: Logger;
  endpoints: Config["providerEndpoints"];
  providers: Config["providers"];
  timeoutMs: number;
}

export class TokenRevoker {
  readonly #d: TokenRevokerDeps;
  constructor(deps: TokenRevokerDeps) {
    this.#d = deps;
  }

  /** Whether deleting this integration's tokens revokes them anywhere. */
  supported(integration: string): boolean {
    return this.#d.endpoints[providerNameFor(integration)].revokeUrl !== null;
  }

  async revoke(row: TokenRow, actor: string, mode: RevokeMode): Promise<Revocation> {
    const provider = providerNameFor(row.integration);
    const url = this.#d.endpoints[provider].revokeUrl;
    if (mode === "skip") return { outcome: "skipped", provider };
    if (!url) return { outcome: "unsupported", provider };
    const tokenTypeHint = row.refreshToken !== null ? "refresh_token" : "access_token";
    let token: string;
    try {
      token = await openField(this.#d, row, tokenTypeHint === "refresh_token" ? "refresh" : "access", actor);
    } catch {
      // DECRYPT_FAILED is audited by openField; the record can still be deleted.
      return { outcome: "failed", provider, tokenTypeHint, reason: "decrypt" };
    }
    const form = new URLSearchParams({ token, token_type_hint: tokenTypeHint });
    const headers = new Headers({ "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" });
    const client = this.#d.providers[provider];
    if (client) {
      if (provider === "OAUTH2") {
        // RFC 7009 §2.1 authenticates the client as the token endpoint does (RFC 6749 §2.3.1: Basic).
        headers.set(
          "Authorization",
          `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString("base64")}`,
        );
      } else {
        form.set("client_id", client.clientId);
        form.set("client_secret", client.clientSecret);
      }
    }
    try {
      const res = await fetch(url, {
        method: "POST",
        headers,
        body: form.toString(),
        redirect: "error",
        signal: AbortSignal.timeout(this.#d.timeoutMs),
      });
      const text = (await res.text()).slice(0, 4096);
      if (res.status === 200) return { outcome: "revoked", provider, tokenTypeHint };
      let code: string | undefined;
      try {
        const body = JSON.parse(text) as { error?: unknown };
        if (typeof body.error === "string" && /^[a-z_]{1,64}$/.test(body.error)) code = body.error;
      } catch {
        /* not JSON */
      }
      // Google answers an already revoked or expired token with 400 invalid_token: it is gone either way.
      if (res.status === 400 && code === "invalid_token")
        return { outcome: "revoked", provider, tokenTypeHint, reason: code };
      return this.#failed(row, { outcome: "failed", provider, tokenTypeHint, reason: code ?? `http_${res.status}` });
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
      return this.#failed(row, {
        outcome: "failed",
        provider,
        tokenTypeHint,
        reason: timedOut ? "timeout" : "network",
      });
    }
  }

  #failed(row: TokenRow, r: Revocation): Revocation {
    this.#d.log.warn("token revocation at the provider failed", {
      target: tokenTarget(row.integration, row.userId),
      provider: r.provider,
      reason: r.reason,
    });
    return r;
  }
}
