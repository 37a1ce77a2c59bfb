/** Wire types of the chronokms API (SPEC §5, §7, §8), shared by the SDK's methods. */
import type { EcPrivateJwk, EcPublicJwk } from "../crypto/jwk.ts";

export type Instant = string | number;

export type Resource = { type: "timeslice" } | { type: "token"; integration: string; userId: string };

export interface AccessRequestInput {
  resource: Resource;
  timeRange: { start: Instant; end: Instant };
  purpose?: string;
  /** Time-slice grants: derive from this master key version (default: the active one). */
  keyVersion?: number;
}

export interface GrantSliceKey {
  slice: number;
  kid: string;
  privateJwk: EcPrivateJwk;
}

export interface GrantSeed {
  depth: number;
  index: number;
  /** base64url, 32 bytes */
  seed: string;
}

export interface Grant {
  id: string;
  granted: true;
  expiresAt: string;
  keyVersion: number;
  sliceSeconds: number;
  slices: { from: number; to: number };
  /** The exact data time the material opens (whole slices; ISO-8601, both ends inclusive). Absent from v1 servers. */
  covered?: { start: string; end: string };
  keys?: GrantSliceKey[];
  seeds?: GrantSeed[];
  /** Present instead of keys/seeds when the requester registered a public key: a JWE to it. */
  encrypted?: string;
}

export interface SlicePublicKey {
  version: number;
  slice: number;
  kid: string;
  sliceSeconds: number;
  /** The version's status when signed; a DataSource encrypts only to `active`. */
  status: "active" | "decrypt-only";
  /** Slice start (inclusive), ISO 8601. */
  from: string;
  /** Slice end (exclusive), ISO 8601. */
  to: string;
  /** Validity of the signed statement (its iat and exp), ISO 8601. */
  issuedAt: string;
  expiresAt: string;
  publicJwk: EcPublicJwk;
  signature: string;
}

export interface TokenInput {
  accessToken: string;
  refreshToken?: string;
  expiresAt?: Instant;
  scope?: string;
  tokenType?: string;
}

/** `GET /v1/tokens/{integration}/{userId}`: absent fields were never stored. Never the refresh token. */
export interface TokenRecord {
  integration: string;
  userId: string;
  accessToken: string;
  expiresAt?: string;
  scope?: string;
  tokenType?: string;
  issuedAt: string;
  lastUsed: string;
  /** The returned token is newer than the one stored when the read began. */
  refreshed: boolean;
  /** A refresh token is stored (it stays in the service; see `exportToken`). */
  hasRefreshToken: boolean;
}

/** `GET /v1/tokens/{integration}/{userId}/export` (role exporter): the stored record, refresh token included. */
export interface TokenExport {
  integration: string;
  userId: string;
  accessToken: string;
  refreshToken?: string;
  expiresAt?: string;
  scope?: string;
  tokenType?: string;
  issuedAt: string;
}

/** Token metadata (status, list, store result): never a token value. */
export interface TokenMetadata {
  integration: string;
  userId: string;
  expiresAt: string | null;
  scope: string | null;
  tokenType: string | null;
  hasRefreshToken: boolean;
  refreshStatus: string;
  status: "valid" | "expired" | "needs-reauth";
  keyVersion: number;
  issuedAt: string;
  lastUsed: string | null;
  createdAt: string;
  updatedAt: string;
  ipAddress: string | null;
  userAgent: string | null;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export type Role = "admin" | "writer" | "reader" | "exporter" | "proxy";

export interface RequesterInput {
  requesterId: string;
  name: string;
  department?: string;
  email?: string;
  enabled?: boolean;
  metadata?: Record<string, unknown>;
  publicKeyJwk?: EcPublicJwk;
}

export interface RequesterPatch {
  name?: string;
  department?: string | null;
  email?: string | null;
  enabled?: boolean;
  metadata?: Record<string, unknown> | null;
  publicKeyJwk?: EcPublicJwk | null;
}

export interface ApiKeyView {
  keyId: string;
  name: string | null;
  roles: Role[];
  enabled: boolean;
  expiresAt: string | null;
  lastUsedAt: string | null;
  createdAt: string;
}

export interface Requester {
  /** Internal id (uuid): what the requester paths take. */
  id: string;
  requesterId: string;
  name: string;
  department: string | null;
  email: string | null;
  enabled: boolean;
  metadata: unknown;
  publicKeyJwk: unknown;
  createdAt: string;
  updatedAt: string;
  apiKeys?: ApiKeyView[];
}

export interface PolicyScope {
  resourceTypes?: Array<"token" | "timeslice">;
  integrations?: string[];
  requesters?: string[];
}

export interface PolicyInput {
  name: string;
  type: "whitelist" | "time-based" | "duration-limit" | "purpose";
  priority?: number;
  enabled?: boolean;
  scope?: PolicyScope;
  config: Record<string, unknown>;
  description?: string;
}

export interface Policy {
  id: string;
  name: string;
  type: PolicyInput["type"];
  priority: number;
  enabled: boolean;
  scope: PolicyScope;
  config: Record<string, unknown>;
  description: string | null;
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface SimulationInput extends AccessRequestInput {
  /** External requester id to simulate for (need not exist). */
  requesterId: string;
  department?: string | null;
  /** Evaluate as if the request were made at this instant. */
  at?: Instant;
}

export interface Simulation {
  granted: boolean;
  policyId: string | null;
  policyVersion: number | null;
  reason: string;
  reasonCode: string;
  requester: { requesterId: string; department: string | null; exists: boolean };
  evaluated: Array<{ id: string; version: number; outcome: string; reason: string; code?: string }>;
  slices?: {
    keyVersion: number;
    sliceSeconds: number;
    from: number;
    to: number;
    keyCount: number;
    seedCount: number;
    covered: { start: string; end: string };
  };
}

export interface AccessRequestRecord {
  id: string;
  requesterId: string;
  resourceType: string;
  resource: unknown;
  startTime: string;
  endTime: string;
  purpose: string | null;
  granted: boolean;
  denialReason: string | null;
  policyIds: string[];
  policyId: string | null;
  keyCount: number | null;
  createdAt: string;
}

export interface KeyVersion {
  version: number;
  status: "active" | "decrypt-only" | "retired";
  sliceSeconds: number;
  kekId: string;
  createdAt: string;
  rotatedAt: string | null;
  retiredAt: string | null;
  records: number;
  recordsByStore: Record<string, number>;
}

/** The rotation schedule (`GET /v1/keys/schedule`); nulls and `enabled: false` when never set. */
export interface KeySchedule {
  rotateEverySeconds: number | null;
  retireAfterSeconds: number | null;
  enabled: boolean;
  nextDueAt: string | null;
  lastRotatedAt: string | null;
  updatedAt: string | null;
  updatedBy: string | null;
}

export interface KeyScheduleInput {
  /** At least 60. */
  rotateEverySeconds: number;
  /** At least 60; null or absent: never retire automatically. */
  retireAfterSeconds?: number | null;
  enabled: boolean;
}

export interface AuditLogEntry {
  id: string;
  chainId: string;
  seq: number;
  timestamp: number;
  eventType: string;
  actor: string;
  target: string | null;
  startTime: number | null;
  endTime: number | null;
  success: boolean;
  details: unknown;
  prevHash: string;
  hash: string;
  createdAt: string;
}

export interface AuditVerification {
  valid: boolean;
  checked: number;
  chains: number;
  firstInvalid?: { seq: number; id: string; chainId: string; reason: string };
  checkpoints: number;
  unclosedChains: number;
  unsignedTailRows: number;
  elapsedMs: number;
}

export interface AuditStats {
  total: number;
  byEventType: Record<string, number>;
  bySuccess: { success: number; failure: number };
  chains: number;
}

export interface Jwks {
  keys: EcPublicJwk[];
}

/** GET /v1/keys/endorsements: JWS by version `endorser` over the public key of the later `version`. */
export interface KeyEndorsements {
  endorsements: Array<{ endorser: number; version: number; signature: string }>;
}

/** Webhook event types (README "Token lifecycle"). */
export type WebhookEventType =
  | "token.degraded"
  | "token.needs_reauth"
  | "token.recovered"
  | "token.deleted"
  | "key.rotated"
  | "audit.verify_failed";

export interface Webhook {
  id: string;
  url: string;
  events: WebhookEventType[];
  description: string | null;
  enabled: boolean;
  createdAt: string;
  createdBy: string;
  deliveries: {
    pending: number;
    delivered: number;
    failed: number;
    lastDeliveredAt: string | null;
    lastError: string | null;
  };
}

export interface WebhookDelivery {
  id: string;
  eventId: string;
  eventType: WebhookEventType;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  nextAttemptAt: string | null;
  lastAttemptAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  createdAt: string;
}

/** What one delete did at the provider (RFC 7009). */
export interface Revocation {
  integration: string;
  outcome: "revoked" | "failed" | "unsupported" | "skipped";
  provider: string;
  tokenTypeHint?: "refresh_token" | "access_token";
  reason?: string;
}

/** The body a webhook receiver gets (signed; see verifyWebhook in the README). */
export interface WebhookPayload {
  id: string;
  type: WebhookEventType;
  createdAt: string;
  data: Record<string, string | number | boolean | null | string[]>;
}

export interface ProxyInit {
  method?: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Passed through as it is (a string, bytes or a stream). */
  body?: BodyInit;
  headers?: Record<string, string>;
  /** Query string parameters for the provider's API. */
  query?: Record<string, string | number | boolean>;
  /** Sent as X-Purpose (policies may require one). */
  purpose?: string;
}
