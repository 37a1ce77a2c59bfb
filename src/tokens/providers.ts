/**
 * OAuth providers a stored token can be refreshed against: which configured provider serves an
 * integration, and one `refresh_token` grant (RFC 6749 §6) with a bounded wait and the answer
 * sorted into success, permanent failure (the user must re-authenticate) or transient failure.
 */
import type { OAuthProviderConfig, ProviderName } from "../config.ts";

/**
 * Integration → provider. The well-known integration names only ever go to their own provider:
 * a Google refresh token is never sent to a generic endpoint just because GOOGLE_* is unset.
 * Any other integration name uses the generic OAUTH2 provider when it is configured.
 */
const KNOWN_INTEGRATIONS: Record<string, Exclude<ProviderName, "OAUTH2">> = {
  gmail: "GOOGLE",
  google: "GOOGLE",
  outlook: "MICROSOFT",
  microsoft: "MICROSOFT",
  github: "GITHUB",
};

export interface Provider {
  name: ProviderName;
  config: OAuthProviderConfig;
}

/** The provider an integration belongs to, configured or not. */
export function providerNameFor(integration: string): ProviderName {
  return KNOWN_INTEGRATIONS[integration.toLowerCase()] ?? "OAUTH2";
}

export function providerFor(
  integration: string,
  providers: Partial<Record<ProviderName, OAuthProviderConfig>>,
): Provider | null {
  const name = providerNameFor(integration);
  const config = providers[name];
  return config ? { name, config } : null;
}

export interface RefreshedTokens {
  accessToken: string;
  /** Present when the provider rotated the refresh token; otherwise the old one stays valid. */
  refreshToken?: string;
  expiresInSeconds?: number;
  scope?: string;
  tokenType?: string;
}

/**
 * `reason` is safe to log and audit: an OAuth error code from RFC 6749 §5.2, an HTTP status, or
 * `timeout` / `network` / `malformed-response`. Never any part of a token or of the raw body.
 */
export type RefreshResult =
  | { ok: true; tokens: RefreshedTokens }
  | { ok: false; permanent: boolean; reason: string; status?: number };

/**
 * OAuth error codes that mean this refresh token is dead (revoked, expired, already rotated):
 * only the user re-authenticating helps. `invalid_client` and friends are our configuration's
 * fault, not the user's, so they stay transient: fix the config and the next read refreshes.
 */
const PERMANENT_ERRORS = new Set(["invalid_grant", "bad_refresh_token"]);
const MAX_RESPONSE_BYTES = 64 * 1024;
const MAX_TOKEN_LENGTH = 8 * 1024;

export function buildRefreshRequest(provider: Provider, refreshToken: string): Request {
  const { clientId, clientSecret, tokenUrl } = provider.config;
  const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken });
  const headers = new Headers({ "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" });
  if (provider.name === "OAUTH2") {
    // RFC 6749 §2.3.1: servers MUST support HTTP Basic; id and secret are form-encoded first.
    const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString("base64");
    headers.set("Authorization", `Basic ${basic}`);
  } else {
    // Google, Microsoft and GitHub document client credentials in the request body.
    form.set("client_id", clientId);
    form.set("client_secret", clientSecret);
  }
  return new Request(tokenUrl, { method: "POST", headers, body: form.toString() });
}

/**
 * Sends the refresh grant and classifies the answer. Never throws: a timeout, a network error or
 * a body it cannot use are transient failures; a documented OAuth refusal of the grant is permanent.
 */
export async function requestRefresh(
  provider: Provider,
  refreshToken: string,
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<RefreshResult> {
  const signals = [AbortSignal.timeout(opts.timeoutMs), ...(opts.signal ? [opts.signal] : [])];
  const signal = AbortSignal.any(signals);
  let res: Response;
  let text: string;
  try {
    res = await fetch(buildRefreshRequest(provider, refreshToken), { signal, redirect: "error" });
    text = await readBounded(res, signal);
  } catch (err) {
    const timedOut =
      signal.aborted || (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError"));
    return { ok: false, permanent: false, reason: timedOut ? "timeout" : "network" };
  }
  const body = parseBody(text);
  const oauthError = typeof body?.error === "string" ? body.error : undefined;
  // GitHub answers a refused grant with 200 and an `error` member; everyone else with 400/401.
  if (oauthError !== undefined && (res.status === 200 || res.status === 400 || res.status === 401)) {
    const reason = /^[a-z_]{1,64}$/.test(oauthError) ? oauthError : "oauth_error";
    return { ok: false, permanent: PERMANENT_ERRORS.has(oauthError), reason, status: res.status };
  }
  if (res.status !== 200) {
    // A 4xx without a usable OAuth error is a misconfiguration we cannot fix by retrying, but
    // neither can the user by re-authenticating; 5xx and 429 are the provider's passing trouble.
    return { ok: false, permanent: false, reason: `http_${res.status}`, status: res.status };
  }
  const tokens = body ? toTokens(body) : null;
  if (!tokens) return { ok: false, permanent: false, reason: "malformed-response", status: res.status };
  return { ok: true, tokens };
}

async function readBounded(res: Response, signal: AbortSignal): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > MAX_RESPONSE_BYTES) {
    await res.body?.cancel();
    return "";
  }
  // The abort signal also covers a provider that sends headers and then stalls the body.
  const reader = res.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const onAbort = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (signal.aborted) throw new DOMException("aborted", "TimeoutError");
      if (done) break;
      size += value.byteLength;
      if (size > MAX_RESPONSE_BYTES) {
        await reader.cancel();
        return "";
      }
      chunks.push(value);
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function parseBody(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const shortString = (v: unknown, max: number) =>
  typeof v === "string" && v.length > 0 && v.length <= max ? v : undefined;

function toTokens(body: Record<string, unknown>): RefreshedTokens | null {
  const accessToken = shortString(body.access_token, MAX_TOKEN_LENGTH);
  if (!accessToken) return null;
  const out: RefreshedTokens = { accessToken };
  const refreshToken = shortString(body.refresh_token, MAX_TOKEN_LENGTH);
  if (refreshToken) out.refreshToken = refreshToken;
  // Some providers send expires_in as a string; anything not a sane positive number is ignored.
  const expiresIn = typeof body.expires_in === "string" ? Number(body.expires_in) : body.expires_in;
  if (typeof expiresIn === "number" && Number.isFinite(expiresIn) && expiresIn > 0 && expiresIn <= 10 * 365 * 86_400) {
    out.expiresInSeconds = Math.floor(expiresIn);
  }
  const scope = shortString(body.scope, 2048);
  if (scope) out.scope = scope;
  const tokenType = shortString(body.token_type, 64);
  if (tokenType) out.tokenType = tokenType;
  return out;
}

/**
 * The typed reason a refresh failed, for the token's state and its audit row: transient
 * (provider_5xx, rate_limited, timeout, network, malformed_response, misconfigured — the token
 * becomes `degraded` and is retried after a backoff) or permanent (invalid_grant, revoked,
 * no_refresh_token — `needs-reauth`).
 */
export type RefreshFailureReason =
  | "provider_5xx"
  | "rate_limited"
  | "timeout"
  | "network"
  | "malformed_response"
  | "misconfigured"
  | "invalid_grant"
  | "revoked"
  | "no_refresh_token";

export function failureReason(result: { permanent: boolean; reason: string; status?: number }): RefreshFailureReason {
  const r = result.reason;
  if (r === "invalid_grant") return "invalid_grant";
  if (result.permanent) return "revoked"; // bad_refresh_token (GitHub) and any other permanent code
  if (r === "timeout" || r === "network") return r;
  if (r === "malformed-response") return "malformed_response";
  if (r === "temporarily_unavailable" || (result.status !== undefined && result.status >= 500)) return "provider_5xx";
  if (result.status === 429 || r === "slow_down") return "rate_limited";
  return "misconfigured";
}
