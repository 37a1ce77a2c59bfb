/**
 * Typed HTTP client for the chronokms API. Sends the API key as a bearer token, turns error bodies
 * into ChronoKmsError (code + request id), and retries only what is safe to repeat: GET, PUT and
 * DELETE on a network error or a 502/503/504. POSTs are never retried (a grant or rotation could
 * happen twice).
 */
import { AccessDeniedError, ChronoKmsError } from "./errors.ts";
import type { AccessRequestInput, Grant, Jwks, SlicePublicKey, TokenInput, TokenRecord } from "./types.ts";

export interface ClientOptions {
  baseUrl: string;
  apiKey?: string;
  fetch?: typeof fetch;
  /** Attempts for idempotent requests (default 3). */
  retries?: number;
  /** Per-attempt timeout in ms (default 15 s). */
  timeoutMs?: number;
}

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
const idempotent = new Set<Method>(["GET", "PUT", "DELETE"]);
const retryableStatus = new Set([502, 503, 504]);

export class ChronoKmsClient {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;
  private readonly retries: number;
  private readonly timeoutMs: number;

  constructor(private readonly opts: ClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    this.fetchImpl = opts.fetch ?? fetch;
    this.retries = Math.max(1, opts.retries ?? 3);
    this.timeoutMs = opts.timeoutMs ?? 15_000;
  }

  /** Low-level call; resolves with the parsed JSON body of a 2xx response. */
  async request<T>(method: Method, path: string, body?: unknown, query?: Record<string, string | number | boolean | undefined>): Promise<T> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const attempts = idempotent.has(method) ? this.retries : 1;
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let res: Response;
      try {
        res = await this.fetchImpl(url, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        lastError = err;
        if (attempt < attempts) await backoff(attempt);
        continue;
      }
      if (res.ok) return (res.status === 204 ? undefined : await res.json()) as T;
      const error = await toError(res);
      if (attempt < attempts && retryableStatus.has(res.status)) {
        lastError = error;
        await backoff(attempt);
        continue;
      }
      throw error;
    }
    throw lastError;
  }

  // --- public keys ---
  jwks = () => this.request<Jwks>("GET", "/.well-known/jwks.json");
  slicePublicKey = (slice: number, version?: number) =>
    this.request<SlicePublicKey>("GET", `/v1/time-slices/${slice}/public-key`, undefined, { version });

  // --- access ---
  /** Resolves with the grant; a denial throws AccessDeniedError. */
  requestAccess = (input: AccessRequestInput) => this.request<Grant>("POST", "/v1/access-requests", input);
  listAccessRequests = (query: Record<string, string | number | boolean | undefined> = {}) =>
    this.request<{ items: unknown[]; nextCursor: string | null }>("GET", "/v1/access-requests", undefined, query);
  simulate = (input: AccessRequestInput) => this.request<unknown>("POST", "/v1/policies/simulate", input);

  // --- tokens ---
  putToken = (integration: string, userId: string, token: TokenInput) =>
    this.request<unknown>("PUT", `/v1/tokens/${enc(integration)}/${enc(userId)}`, token);
  getToken = (integration: string, userId: string, opts: { refresh?: "auto" | "never" | "force"; purpose?: string } = {}) =>
    this.request<TokenRecord>("GET", `/v1/tokens/${enc(integration)}/${enc(userId)}`, undefined, { refresh: opts.refresh, purpose: opts.purpose });
  tokenStatus = (integration: string, userId: string) =>
    this.request<unknown>("GET", `/v1/tokens/${enc(integration)}/${enc(userId)}/status`);
  deleteToken = (integration: string, userId: string) => this.request<unknown>("DELETE", `/v1/tokens/${enc(integration)}/${enc(userId)}`);
  deleteUserTokens = (userId: string) => this.request<unknown>("DELETE", `/v1/users/${enc(userId)}/tokens`);
  listTokens = (query: { userId?: string; integration?: string } = {}) => this.request<unknown>("GET", "/v1/tokens", undefined, query);

  // --- administration ---
  createRequester = (input: Record<string, unknown>) => this.request<{ id: string } & Record<string, unknown>>("POST", "/v1/requesters", input);
  createApiKey = (requesterId: string, input: { roles: string[]; name?: string; expiresAt?: string }) =>
    this.request<{ keyId: string; apiKey: string }>("POST", `/v1/requesters/${enc(requesterId)}/api-keys`, input);
  revokeApiKey = (requesterId: string, keyId: string) =>
    this.request<unknown>("DELETE", `/v1/requesters/${enc(requesterId)}/api-keys/${enc(keyId)}`);
  createPolicy = (input: Record<string, unknown>) => this.request<{ id: string } & Record<string, unknown>>("POST", "/v1/policies", input);
  updatePolicy = (id: string, patch: Record<string, unknown>) => this.request<unknown>("PATCH", `/v1/policies/${enc(id)}`, patch);
  deletePolicy = (id: string) => this.request<unknown>("DELETE", `/v1/policies/${enc(id)}`);
  listPolicies = () => this.request<unknown>("GET", "/v1/policies");
  keys = () => this.request<unknown>("GET", "/v1/keys");
  rotateKeys = () => this.request<unknown>("POST", "/v1/keys/rotate");
  auditLogs = (query: Record<string, string | number | undefined> = {}) => this.request<unknown>("GET", "/v1/audit-logs", undefined, query);
  verifyAudit = () => this.request<{ valid: boolean; checked: number }>("GET", "/v1/audit-logs/verify");
}

const enc = encodeURIComponent;
const backoff = (attempt: number) => new Promise((r) => setTimeout(r, 100 * 2 ** (attempt - 1) + Math.random() * 50));

async function toError(res: Response): Promise<ChronoKmsError> {
  const requestId = res.headers.get("x-request-id") ?? undefined;
  let body: any;
  try {
    body = await res.json();
  } catch {
    return new ChronoKmsError(res.status, "HTTP_ERROR", `HTTP ${res.status}`, requestId);
  }
  const e = body?.error ?? {};
  if (res.status === 403 && body?.granted === false) {
    return new AccessDeniedError(res.status, e.message ?? "access denied", body.id, body.policyId ?? null, body.reason ?? "", requestId, body);
  }
  return new ChronoKmsError(res.status, e.code ?? "HTTP_ERROR", e.message ?? `HTTP ${res.status}`, e.requestId ?? requestId, e.details, body);
}
