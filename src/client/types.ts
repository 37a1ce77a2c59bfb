/**
 * Wire types of the chronokms API (SPEC §5, §7, §8), derived from the server's route schemas
 * (src/http/routes/*.ts, the wire contract) with type-only imports: erased at build time, so
 * nothing of the server reaches the SDK bundle (test/client/bundle.test.ts). Responses are the
 * schemas' output; request bodies their input (what the caller may send, before defaults).
 */
import type { z } from "@hono/zod-openapi";
import type {
  AccessRequestBodySchema,
  AccessRequestSchema,
  GrantKeySchema,
  GrantSchema,
  GrantSeedSchema,
} from "../http/routes/access-requests.ts";
import type { AuditLogSchema, StatsSchema, VerifySchema } from "../http/routes/audit.ts";
import type { HealthSchema, ReadySchema } from "../http/routes/health.ts";
import type {
  EndorsementsSchema,
  JwksSchema,
  KeysOverviewSchema,
  KeyVersionSchema,
  RotateResultSchema,
  ScheduleBodySchema,
  ScheduleSchema,
  SignedSliceKeySchema,
} from "../http/routes/keys.ts";
import type {
  PolicyInputSchema,
  PolicyPatchSchema,
  PolicySchema,
  SimulateBodySchema,
  SimulationSchema,
} from "../http/routes/policies.ts";
import type {
  ApiKeyCreateSchema,
  ApiKeyCreatedSchema,
  ApiKeyViewSchema,
  RequesterCreateSchema,
  RequesterPatchSchema,
  RequesterSchema,
} from "../http/routes/requesters.ts";
import type {
  StoreResultSchema,
  StoreTokenBodySchema,
  TokenExportSchema,
  TokenMetadataSchema,
  TokenReadSchema,
  TokensDeletedSchema,
} from "../http/routes/tokens.ts";
import type {
  CreateWebhookSchema,
  DeliverySchema,
  WebhookCreatedSchema,
  WebhookSchema,
} from "../http/routes/webhooks.ts";
import type { WebhookEvent } from "../webhooks/events.ts";

type Out<S extends z.ZodType> = z.output<S>;
type In<S extends z.ZodType> = z.input<S>;

/** An ISO-8601 date-time with offset, or epoch milliseconds. */
export type Instant = string | number;

export type AccessRequestInput = In<typeof AccessRequestBodySchema>;
export type Resource = AccessRequestInput["resource"];
export type GrantSliceKey = Out<typeof GrantKeySchema>;
export type GrantSeed = Out<typeof GrantSeedSchema>;
export type Grant = Out<typeof GrantSchema>;
export type AccessRequestRecord = Out<typeof AccessRequestSchema>;

export type SlicePublicKey = Out<typeof SignedSliceKeySchema>;
export type Jwks = Out<typeof JwksSchema>;
/** GET /v1/keys/endorsements: JWS by version `endorser` over the public key of the later `version`. */
export type KeyEndorsements = Out<typeof EndorsementsSchema>;
export type KeyVersion = Out<typeof KeyVersionSchema>;
export type KeysOverview = Out<typeof KeysOverviewSchema>;
/** The rotation schedule (`GET /v1/keys/schedule`); nulls and `enabled: false` when never set. */
export type KeySchedule = Out<typeof ScheduleSchema>;
export type KeyScheduleInput = In<typeof ScheduleBodySchema>;
export type RotateResult = Out<typeof RotateResultSchema>;

export type TokenInput = In<typeof StoreTokenBodySchema>;
/** `GET /v1/tokens/{integration}/{userId}`: absent fields were never stored. Never the refresh token. */
export type TokenRecord = Out<typeof TokenReadSchema>;
/** `GET /v1/tokens/{integration}/{userId}/export` (role exporter): the stored record, refresh token included. */
export type TokenExport = Out<typeof TokenExportSchema>;
/** Token metadata (status, list, store result): never a token value. */
export type TokenMetadata = Out<typeof TokenMetadataSchema>;
export type TokenStored = Out<typeof StoreResultSchema>;
export type TokensDeleted = Out<typeof TokensDeletedSchema>;
/** What one delete did at the provider (RFC 7009). */
export type Revocation = TokensDeleted["revocations"][number];

/** One page of any list: pass `nextCursor` back as `cursor` for the next page; null on the last one. */
export type { Page } from "../lib/keyset-cursor.ts";

export type ApiKeyView = Out<typeof ApiKeyViewSchema>;
export type Role = ApiKeyView["roles"][number];
export type ApiKeyInput = In<typeof ApiKeyCreateSchema>;
export type ApiKeyCreated = Out<typeof ApiKeyCreatedSchema>;
export type RequesterInput = In<typeof RequesterCreateSchema>;
export type RequesterPatch = In<typeof RequesterPatchSchema>;
export type Requester = Out<typeof RequesterSchema>;

export type PolicyInput = In<typeof PolicyInputSchema>;
export type PolicyPatch = In<typeof PolicyPatchSchema>;
export type PolicyScope = NonNullable<Out<typeof PolicyInputSchema>["scope"]>;
export type Policy = Out<typeof PolicySchema>;
export type SimulationInput = In<typeof SimulateBodySchema>;
export type Simulation = Out<typeof SimulationSchema>;

export type AuditLogEntry = Out<typeof AuditLogSchema>;
export type AuditVerification = Out<typeof VerifySchema>;
export type AuditStats = Out<typeof StatsSchema>;

export type Health = Out<typeof HealthSchema>;
export type Readiness = Out<typeof ReadySchema>;

export type WebhookInput = In<typeof CreateWebhookSchema>;
export type Webhook = Out<typeof WebhookSchema>;
export type WebhookCreated = Out<typeof WebhookCreatedSchema>;
export type WebhookDelivery = Out<typeof DeliverySchema>;
/** Webhook event types (README "Token lifecycle"). */
export type WebhookEventType = WebhookEvent["type"];
/** The body a webhook receiver gets (signed; see verifyWebhook in the README). */
export type WebhookPayload = WebhookEvent;

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
