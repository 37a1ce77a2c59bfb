/**
 * Typed HTTP client for the chronokms API. Sends the API key as a bearer token, turns error bodies
 * into ChronoKmsError (code + request id; a policy denial of either kind into AccessDeniedError),
 * and retries only what is safe to repeat: GET, PUT and DELETE on a network error or a 502/503/504.
 * POSTs and PATCHes are never retried (a grant or rotation could happen twice).
 */
import { AccessDeniedError, ChronoKmsError } from "./errors.ts";
import type {
  AccessRequestInput,
  AccessRequestRecord,
  ApiKeyCreated,
  ApiKeyInput,
  AuditLogEntry,
  AuditStats,
  AuditVerification,
  Grant,
  Health,
  Instant,
  Jwks,
  KeyEndorsements,
  KeySchedule,
  KeyScheduleInput,
  KeysOverview,
  Page,
  Policy,
  PolicyInput,
  PolicyPatch,
  ProxyInit,
  Readiness,
  Requester,
  RequesterInput,
  RequesterPatch,
  RotateResult,
  Simulation,
  SimulationInput,
  SlicePublicKey,
  TokenExport,
  TokenInput,
  TokenMetadata,
  TokenRecord,
  TokensDeleted,
  TokenStored,
  Webhook,
  WebhookCreated,
  WebhookDelivery,
  WebhookInput,
} from "./types.ts";

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
  private readonly fetchImpl: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
  private readonly retries: number;
  private readonly timeoutMs: number;

  constructor(private readonly opts: ClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    // Bound: a bare `fetch` stored on an object and called as a method throws "Illegal invocation" in browsers.
    this.fetchImpl = opts.fetch ?? ((input, init) => fetch(input, init));
    this.retries = Math.max(1, opts.retries ?? 3);
    this.timeoutMs = opts.timeoutMs ?? 15_000;
  }

  /** Low-level call; resolves with the parsed JSON body of a 2xx response. */
  async request<T>(method: Method, path: string, body?: unknown, query?: object): Promise<T> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {}))
      if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
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
      // UPSTREAM_FAILED is the OAuth provider failing a refresh, not a hiccup in front of us.
      if (attempt < attempts && retryableStatus.has(res.status) && error.code !== "UPSTREAM_FAILED") {
        lastError = error;
        await backoff(attempt);
        continue;
      }
      throw error;
    }
    throw lastError;
  }

  // --- health and public keys (no API key needed) ---
  health = () => this.request<Health>("GET", "/healthz");
  ready = () => this.request<Readiness>("GET", "/readyz");
  jwks = () => this.request<Jwks>("GET", "/.well-known/jwks.json");
  /** Each master key version's signatures over the later ones (DataSource follows rotations with them). */
  keyEndorsements = () => this.request<KeyEndorsements>("GET", "/v1/keys/endorsements");
  /** A signed slice public key; `"current"` = the slice of now (the service signs only slices near now). */
  slicePublicKey = (slice: number | "current", version?: number) =>
    this.request<SlicePublicKey>("GET", `/v1/time-slices/${slice}/public-key`, undefined, { version });

  // --- access (reader) ---
  /** Resolves with the grant; a policy denial throws AccessDeniedError. */
  requestAccess = (input: AccessRequestInput) => this.request<Grant>("POST", "/v1/access-requests", input);

  // --- tokens (writer: put/delete; reader: get/status/list; exporter: export) ---
  putToken = (integration: string, userId: string, token: TokenInput) =>
    this.request<TokenStored>("PUT", tokenPath(integration, userId), token);
  /** The decrypted token after the access decision; a policy denial throws AccessDeniedError. */
  getToken = (
    integration: string,
    userId: string,
    opts: { refresh?: "auto" | "never" | "force"; purpose?: string } = {},
  ) =>
    this.request<TokenRecord>("GET", tokenPath(integration, userId), undefined, {
      refresh: opts.refresh,
      purpose: opts.purpose,
    });
  /** A decision like a read: denied (AccessDeniedError) unless the caller's policies admit it. */
  tokenStatus = (integration: string, userId: string, opts: { purpose?: string } = {}) =>
    this.request<TokenMetadata>("GET", `${tokenPath(integration, userId)}/status`, undefined, {
      purpose: opts.purpose,
    });
  /** Role exporter: the stored token with its refresh token (migrating off chronokms); audited TOKEN_EXPORTED. */
  exportToken = (integration: string, userId: string, opts: { purpose?: string } = {}) =>
    this.request<TokenExport>("GET", `${tokenPath(integration, userId)}/export`, undefined, { purpose: opts.purpose });
  /** Revokes at the provider where supported, then deletes; `revoke: "required"` keeps the record (502) unless the provider confirmed. */
  deleteToken = (integration: string, userId: string, opts: { revoke?: "best-effort" | "required" } = {}) =>
    this.request<void>("DELETE", tokenPath(integration, userId), undefined, { revoke: opts.revoke });
  deleteUserTokens = (userId: string, opts: { revoke?: "best-effort" | "required" } = {}) =>
    this.request<TokensDeleted>("DELETE", `/v1/users/${enc(userId)}/tokens`, undefined, { revoke: opts.revoke });

  // --- proxy (role proxy): call the provider's API with the stored token; the token never reaches you ---
  /**
   * Resolves with the provider's response as it is (any status). chronokms's own refusals (denied,
   * no token, bad path, upstream unreachable) throw ChronoKmsError / AccessDeniedError instead.
   * `path` is the provider API path below its base, e.g. "gmail/v1/users/me/messages".
   */
  proxy = async (integration: string, userId: string, path: string, init: ProxyInit = {}): Promise<Response> => {
    const url = new URL(`${this.baseUrl}/v1/proxy/${enc(integration)}/${enc(userId)}/${path.replace(/^\/+/, "")}`);
    for (const [k, v] of Object.entries(init.query ?? {})) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { ...init.headers };
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    if (init.purpose) headers["x-purpose"] = init.purpose;
    const res = await this.fetchImpl(url, {
      method: init.method ?? "GET",
      headers,
      ...(init.body !== undefined ? { body: init.body } : {}),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (res.headers.get("x-chronokms-proxy") === "upstream") return res;
    if (res.ok) return res;
    throw await toError(res);
  };

  // --- webhooks (admin) ---
  /** The returned `secret` (whsec_…) is shown this once: keep it to verify signatures. */
  createWebhook = (input: WebhookInput) => this.request<WebhookCreated>("POST", "/v1/webhooks", input);
  /** Oldest first; follow nextCursor. */
  listWebhooks = (query: { limit?: number; cursor?: string } = {}) =>
    this.request<Page<Webhook>>("GET", "/v1/webhooks", undefined, query);
  /** Newest first; follow nextCursor. */
  webhookDeliveries = (
    id: string,
    query: { status?: "pending" | "delivered" | "failed"; limit?: number; cursor?: string } = {},
  ) => this.request<Page<WebhookDelivery>>("GET", `/v1/webhooks/${enc(id)}/deliveries`, undefined, query);
  deleteWebhook = (id: string) => this.request<void>("DELETE", `/v1/webhooks/${enc(id)}`);
  /** Only the records the caller's policies admit (a page may be short; follow nextCursor). */
  listTokens = (
    query: { userId?: string; integration?: string; purpose?: string; limit?: number; cursor?: string } = {},
  ) => this.request<Page<TokenMetadata>>("GET", "/v1/tokens", undefined, query);

  // --- administration (admin) ---
  listAccessRequests = (
    query: {
      requesterId?: string;
      granted?: boolean;
      resourceType?: "token" | "timeslice";
      from?: Instant;
      to?: Instant;
      limit?: number;
      cursor?: string;
    } = {},
  ) => this.request<Page<AccessRequestRecord>>("GET", "/v1/access-requests", undefined, query);
  simulate = (input: SimulationInput) => this.request<Simulation>("POST", "/v1/policies/simulate", input);

  listRequesters = (query: { requesterId?: string; enabled?: boolean; limit?: number; cursor?: string } = {}) =>
    this.request<Page<Requester>>("GET", "/v1/requesters", undefined, query);
  /** `id` in the requester methods is the internal uuid returned by createRequester, not requesterId. */
  createRequester = (input: RequesterInput) => this.request<Requester>("POST", "/v1/requesters", input);
  getRequester = (id: string) => this.request<Requester>("GET", `/v1/requesters/${enc(id)}`);
  updateRequester = (id: string, patch: RequesterPatch) =>
    this.request<Requester>("PATCH", `/v1/requesters/${enc(id)}`, patch);
  deleteRequester = (id: string) => this.request<void>("DELETE", `/v1/requesters/${enc(id)}`);
  /** The returned apiKey is shown this once. */
  createApiKey = (id: string, input: ApiKeyInput) =>
    this.request<ApiKeyCreated>("POST", `/v1/requesters/${enc(id)}/api-keys`, input);
  revokeApiKey = (id: string, keyId: string) =>
    this.request<void>("DELETE", `/v1/requesters/${enc(id)}/api-keys/${enc(keyId)}`);

  listPolicies = () => this.request<{ items: Policy[] }>("GET", "/v1/policies");
  createPolicy = (input: PolicyInput) => this.request<Policy>("POST", "/v1/policies", input);
  getPolicy = (id: string) => this.request<Policy>("GET", `/v1/policies/${enc(id)}`);
  updatePolicy = (id: string, patch: PolicyPatch) => this.request<Policy>("PATCH", `/v1/policies/${enc(id)}`, patch);
  deletePolicy = (id: string) => this.request<void>("DELETE", `/v1/policies/${enc(id)}`);

  keys = () => this.request<KeysOverview>("GET", "/v1/keys");
  keySchedule = () => this.request<KeySchedule>("GET", "/v1/keys/schedule");
  setKeySchedule = (input: KeyScheduleInput) => this.request<KeySchedule>("PUT", "/v1/keys/schedule", input);
  rotateKeys = () => this.request<RotateResult>("POST", "/v1/keys/rotate");

  auditLogs = (
    query: { eventType?: string; actor?: string; from?: Instant; to?: Instant; limit?: number; cursor?: string } = {},
  ) => this.request<Page<AuditLogEntry>>("GET", "/v1/audit-logs", undefined, query);
  auditStats = (query: { from?: Instant; to?: Instant } = {}) =>
    this.request<AuditStats>("GET", "/v1/audit-logs/stats", undefined, query);
  verifyAudit = () => this.request<AuditVerification>("GET", "/v1/audit-logs/verify");
}

const enc = encodeURIComponent;
const tokenPath = (integration: string, userId: string) => `/v1/tokens/${enc(integration)}/${enc(userId)}`;
const backoff = (attempt: number) => new Promise((r) => setTimeout(r, 100 * 2 ** (attempt - 1) + Math.random() * 50));

async function toError(res: Response): Promise<ChronoKmsError> {
  const requestId = res.headers.get("x-request-id") ?? undefined;
  // biome-ignore lint/suspicious/noExplicitAny: an error body is whatever the server (or a proxy in front of it) sent, read with fallbacks for every field
  let body: any;
  try {
    body = await res.json();
  } catch {
    return new ChronoKmsError(res.status, "HTTP_ERROR", `HTTP ${res.status}`, requestId);
  }
  const e = body?.error ?? {};
  const rid = e.requestId ?? body?.requestId ?? requestId;
  if (res.status === 403 && body?.granted === false) {
    // Time-slice denial: { id, granted: false, error, policyId, reason, reasonCode }.
    return new AccessDeniedError(
      res.status,
      e.message ?? "access denied",
      body.id,
      body.policyId ?? null,
      body.reason ?? "",
      rid,
      body,
      body.reasonCode,
    );
  }
  if (e.code === "ACCESS_DENIED") {
    // Token-read denial in the standard error shape: the decision travels in details.
    const d = e.details ?? {};
    return new AccessDeniedError(
      res.status,
      e.message ?? "access denied",
      d.accessRequestId ?? "",
      d.policyId ?? null,
      d.reason ?? e.message ?? "",
      rid,
      body,
      d.denialCode,
    );
  }
  return new ChronoKmsError(
    res.status,
    e.code ?? "HTTP_ERROR",
    e.message ?? `HTTP ${res.status}`,
    rid,
    e.details,
    body,
  );
}
