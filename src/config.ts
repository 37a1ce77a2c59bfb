/**
 * The service configuration: one zod-parsed object, read once at start. A bad value stops the
 * process with a one-line message naming the variable and saying how to fix it.
 */
import { z } from "zod";
import { ConfigError } from "./errors.ts";
import type { DatabaseTarget } from "./db/database.ts";

const bool = (fallback: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no", "on", "off"], { message: "expected true or false" })
    .optional()
    .transform((v) => (v === undefined ? fallback : ["true", "1", "yes", "on"].includes(v)));

const int = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === "") return fallback;
      const n = Number(v);
      if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: "custom", message: `expected a whole number from ${min} to ${max}, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

/**
 * TRUST_PROXY (v2): how many proxies in front of the service append to X-Forwarded-For. v1's
 * boolean is refused rather than guessed: `true` used to mean "take the leftmost entry", which
 * the client writes, and no number reproduces that safely. `false` still means 0.
 */
const trustedHops = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v === "" || v === "false" || v === "0") return 0;
    if (/^\d+$/.test(v) && Number(v) <= 10) return Number(v);
    const legacy = ["true", "yes", "on"].includes(v.toLowerCase());
    ctx.addIssue({
      code: "custom",
      message: legacy
        ? `is now the number of trusted proxy hops, not true/false (v1's "true" took the client-chosen leftmost X-Forwarded-For entry); set TRUST_PROXY=1 behind one proxy, 2 behind two, 0 for none`
        : `expected the number of trusted proxy hops, 0 to 10, got "${v}"`,
    });
    return z.NEVER;
  });

const databaseUrl = z
  .string()
  .optional()
  .transform((v, ctx): DatabaseTarget | undefined => {
    if (v === undefined || v === "") return undefined;
    if (v === "memory://") return { kind: "pglite", dataDir: null };
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      ctx.addIssue({
        code: "custom",
        message:
          "is not a URL; use postgres://user@host:5432/db, memory://, or leave it unset for the embedded database",
      });
      return z.NEVER;
    }
    if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
      ctx.addIssue({
        code: "custom",
        message: `unsupported scheme "${url.protocol}"; use postgres://…, memory://, or leave it unset for the embedded database`,
      });
      return z.NEVER;
    }
    if (!url.hostname && !url.searchParams.get("host")) {
      ctx.addIssue({ code: "custom", message: "has no host; use postgres://user@host:5432/db" });
      return z.NEVER;
    }
    return { kind: "postgres", url: v };
  });

/** An API base for the proxy: http(s), no credentials, query or fragment (the caller's path goes after it). */
const apiBase = z.string().transform((v, ctx) => {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    ctx.addIssue({ code: "custom", message: "expected an http(s) URL such as https://api.example.com" });
    return z.NEVER;
  }
  if (
    (url.protocol !== "https:" && url.protocol !== "http:") ||
    url.username ||
    url.password ||
    url.search ||
    url.hash
  ) {
    ctx.addIssue({ code: "custom", message: "expected an http(s) URL without credentials, query or fragment" });
    return z.NEVER;
  }
  return url.href.replace(/\/$/, "");
});

const providerVars = (p: string) => ({
  [`${p}_CLIENT_ID`]: z.string().min(1).optional(),
  [`${p}_CLIENT_SECRET`]: z.string().min(1).optional(),
  [`${p}_TOKEN_URL`]: z.url({ message: "expected an http(s) URL" }).optional(),
  [`${p}_API_BASE`]: apiBase.optional(),
  [`${p}_REVOKE_URL`]: z.url({ protocol: /^https?$/, message: "expected an http(s) URL" }).optional(),
});

const envSchema = z.object({
  NODE_ENV: z
    .enum(["development", "production", "test"], { message: "expected development, production or test" })
    .default("development"),
  PORT: int(3000, 0, 65535),
  HOST: z.string().min(1).default("127.0.0.1"),
  DATABASE_URL: databaseUrl,
  DATABASE_POOL_SIZE: int(10, 1, 200),
  DATA_DIR: z.string().min(1).default(".data"),
  MIGRATE_ON_START: bool(true),
  MASTER_KEY_ENCRYPTION_KEY: z.string().optional(),
  MASTER_KEY_ENCRYPTION_KEY_PREVIOUS: z.string().optional(),
  SLICE_SECONDS: int(60, 1, 31 * 24 * 3600),
  BOOTSTRAP_ADMIN_KEY: z.string().min(1).optional(),
  LOG_LEVEL: z
    .enum(["debug", "info", "warn", "error", "silent"], { message: "expected debug, info, warn, error or silent" })
    .default("info"),
  BODY_LIMIT_BYTES: int(64 * 1024, 1024, 16 * 1024 * 1024),
  AUDIT_CHECKPOINT_EVERY: int(1000, 1, 1_000_000),
  AUDIT_WRITE_TIMEOUT_MS: int(2000, 50, 60_000),
  AUDIT_CHECKPOINT_SECONDS: int(10, 1, 3600),
  AUDIT_ANCHOR_FILE: z
    .string()
    .min(1, { message: "must not be empty; unset it for the default, or set it to off" })
    .optional(),
  AUTH_FAILURES_PER_MINUTE: int(30, 1, 100_000),
  TRUST_PROXY: trustedHops,
  SHUTDOWN_GRACE_MS: int(10_000, 0, 300_000),
  REFRESH_TIMEOUT_MS: int(10_000, 100, 120_000),
  REFRESH_BACKOFF_BASE_MS: int(30_000, 1, 3_600_000),
  REFRESH_BACKOFF_MAX_MS: int(3_600_000, 1, 86_400_000),
  PROXY_TIMEOUT_MS: int(30_000, 100, 600_000),
  PROXY_MAX_REQUEST_BYTES: int(10 * 1024 * 1024, 0, 1024 * 1024 * 1024),
  PROXY_MAX_RESPONSE_BYTES: int(50 * 1024 * 1024, 1024, 4 * 1024 * 1024 * 1024),
  REVOKE_TIMEOUT_MS: int(5_000, 100, 120_000),
  WEBHOOK_POLL_MS: int(1_000, 0, 600_000),
  WEBHOOK_TIMEOUT_MS: int(5_000, 100, 120_000),
  WEBHOOK_MAX_ATTEMPTS: int(15, 1, 100),
  WEBHOOK_RETRY_BASE_MS: int(5_000, 1, 3_600_000),
  WEBHOOK_RETRY_MAX_MS: int(3_600_000, 1, 86_400_000),
  METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  METRICS_PORT: int(-1, 0, 65535), // -1: unset, no separate listener
  ...providerVars("GOOGLE"),
  ...providerVars("MICROSOFT"),
  ...providerVars("GITHUB"),
  ...providerVars("OAUTH2"),
});

type Env = z.infer<typeof envSchema>;

/** Every environment variable the service reads (documented in .env.example and the README). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

export interface OAuthProviderConfig {
  clientId: string;
  clientSecret: string;
  tokenUrl: string;
}

const defaultTokenUrls = {
  GOOGLE: "https://oauth2.googleapis.com/token",
  MICROSOFT: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
  GITHUB: "https://github.com/login/oauth/access_token",
  OAUTH2: undefined,
} as const;

export type ProviderName = keyof typeof defaultTokenUrls;

/**
 * Where the proxy may send a provider's calls (a fixed allowlist: one base per provider) and the
 * RFC 7009 revocation endpoint of providers that have one. Microsoft has no RFC 7009 endpoint and
 * GitHub's grant revocation is a different API, so neither revokes unless an operator sets one.
 */
const defaultApiBases = {
  GOOGLE: "https://www.googleapis.com",
  MICROSOFT: "https://graph.microsoft.com",
  GITHUB: "https://api.github.com",
  OAUTH2: undefined,
} as const;
const defaultRevokeUrls = {
  GOOGLE: "https://oauth2.googleapis.com/revoke",
  MICROSOFT: undefined,
  GITHUB: undefined,
  OAUTH2: undefined,
} as const;

export interface ProviderEndpoints {
  /** The proxy's API base, or null (no proxy for this provider). */
  apiBase: string | null;
  /** The base came from `<PROVIDER>_API_BASE`: the operator chose it, so private addresses are allowed. */
  apiBaseConfigured: boolean;
  /** RFC 7009 token revocation endpoint, or null (deletes do not revoke). */
  revokeUrl: string | null;
}

export interface Config {
  env: Env["NODE_ENV"];
  isProduction: boolean;
  port: number;
  host: string;
  database: DatabaseTarget;
  dataDir: string;
  migrateOnStart: boolean;
  kek: string | undefined;
  kekPrevious: string | undefined;
  sliceSeconds: number;
  bootstrapAdminKey: string | undefined;
  logLevel: Env["LOG_LEVEL"];
  bodyLimitBytes: number;
  auditCheckpointEvery: number;
  /** statement_timeout/lock_timeout of an audit write; past it the caller gets 503. */
  auditWriteTimeoutMs: number;
  /** A chain with unsigned rows gets a signed checkpoint within this many seconds. */
  auditCheckpointSeconds: number;
  /**
   * Where signed checkpoint heads are appended (fsynced), outside the database. Default
   * `DATA_DIR/audit-anchors.jsonl` for every persistent database (PGlite on disk, and PostgreSQL:
   * DATA_DIR defaults to ./.data); null for `memory://` or `AUDIT_ANCHOR_FILE=off`.
   */
  auditAnchorFile: string | null;
  authFailuresPerMinute: number;
  /** Trusted proxy hops: the client address is the entry this many places from the right of X-Forwarded-For (0: the peer address). */
  trustProxy: number;
  shutdownGraceMs: number;
  refreshTimeoutMs: number;
  /** Backoff of a degraded token: base·2^(failures−1) with jitter, capped. */
  refreshBackoff: { baseMs: number; maxMs: number };
  /** Separate unauthenticated `GET /metrics` listener; undefined = none (admin-only on the API port). */
  metricsListener: { host: string; port: number } | undefined;
  providers: Partial<Record<ProviderName, OAuthProviderConfig>>;
  /** Per provider, whether or not client credentials are configured. */
  providerEndpoints: Record<ProviderName, ProviderEndpoints>;
  proxy: { timeoutMs: number; maxRequestBytes: number; maxResponseBytes: number };
  revokeTimeoutMs: number;
  webhooks: { pollMs: number; timeoutMs: number; maxAttempts: number; retryBaseMs: number; retryMaxMs: number };
}

const hints: Record<string, string> = {
  PORT: "set PORT to a free TCP port, e.g. PORT=3000",
  DATABASE_URL: "",
  NODE_ENV: "",
};

function anchorFile(e: Env): string | null {
  if (e.AUDIT_ANCHOR_FILE === "off") return null;
  if (e.AUDIT_ANCHOR_FILE !== undefined) return e.AUDIT_ANCHOR_FILE;
  // An in-memory database has nothing to anchor beyond the process's life.
  if (e.DATABASE_URL && e.DATABASE_URL.kind === "pglite" && e.DATABASE_URL.dataDir === null) return null;
  return `${e.DATA_DIR.replace(/\/$/, "")}/audit-anchors.jsonl`;
}

/** Parses the environment. Throws ConfigError with a one-line message naming the variable. */
export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? "environment");
    const hint = hints[name] ? ` (${hints[name]})` : "";
    throw new ConfigError(`${name}: ${issue.message}${hint}`);
  }
  const e = parsed.data;
  const providers: Config["providers"] = {};
  const providerEndpoints = {} as Config["providerEndpoints"];
  for (const p of Object.keys(defaultTokenUrls) as ProviderName[]) {
    const id = e[`${p}_CLIENT_ID` as keyof Env] as string | undefined;
    const secret = e[`${p}_CLIENT_SECRET` as keyof Env] as string | undefined;
    const url = (e[`${p}_TOKEN_URL` as keyof Env] as string | undefined) ?? defaultTokenUrls[p];
    if (id === undefined && secret === undefined) continue;
    if (!id || !secret) throw new ConfigError(`${p}_CLIENT_ID and ${p}_CLIENT_SECRET must be set together`);
    if (!url) throw new ConfigError(`${p}_TOKEN_URL: required for the generic OAuth2 provider`);
    providers[p] = { clientId: id, clientSecret: secret, tokenUrl: url };
  }
  for (const p of Object.keys(defaultTokenUrls) as ProviderName[]) {
    const base = e[`${p}_API_BASE` as keyof Env] as string | undefined;
    const revoke = e[`${p}_REVOKE_URL` as keyof Env] as string | undefined;
    // The built-in revocation endpoint is used only for a provider configured against its real
    // token endpoint: tokens from a test or staging token URL are never sent to the real provider.
    const realProvider = providers[p] !== undefined && e[`${p}_TOKEN_URL` as keyof Env] === undefined;
    providerEndpoints[p] = {
      apiBase: base ?? defaultApiBases[p] ?? null,
      apiBaseConfigured: base !== undefined,
      revokeUrl: revoke ?? (realProvider ? (defaultRevokeUrls[p] ?? null) : null),
    };
  }
  return {
    env: e.NODE_ENV,
    isProduction: e.NODE_ENV === "production",
    port: e.PORT,
    host: e.HOST,
    database: e.DATABASE_URL ?? { kind: "pglite", dataDir: `${e.DATA_DIR.replace(/\/$/, "")}/pglite` },
    dataDir: e.DATA_DIR,
    migrateOnStart: e.MIGRATE_ON_START,
    // An empty `MASTER_KEY_ENCRYPTION_KEY=` stays "" (an error at start), never "unset".
    kek: e.MASTER_KEY_ENCRYPTION_KEY,
    kekPrevious: e.MASTER_KEY_ENCRYPTION_KEY_PREVIOUS,
    sliceSeconds: e.SLICE_SECONDS,
    bootstrapAdminKey: e.BOOTSTRAP_ADMIN_KEY,
    logLevel: e.LOG_LEVEL,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    auditCheckpointEvery: e.AUDIT_CHECKPOINT_EVERY,
    auditWriteTimeoutMs: e.AUDIT_WRITE_TIMEOUT_MS,
    auditCheckpointSeconds: e.AUDIT_CHECKPOINT_SECONDS,
    auditAnchorFile: anchorFile(e),
    authFailuresPerMinute: e.AUTH_FAILURES_PER_MINUTE,
    trustProxy: e.TRUST_PROXY,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    refreshTimeoutMs: e.REFRESH_TIMEOUT_MS,
    refreshBackoff: { baseMs: e.REFRESH_BACKOFF_BASE_MS, maxMs: e.REFRESH_BACKOFF_MAX_MS },
    metricsListener: e.METRICS_PORT === -1 ? undefined : { host: e.METRICS_HOST, port: e.METRICS_PORT },
    providers,
    providerEndpoints,
    proxy: {
      timeoutMs: e.PROXY_TIMEOUT_MS,
      maxRequestBytes: e.PROXY_MAX_REQUEST_BYTES,
      maxResponseBytes: e.PROXY_MAX_RESPONSE_BYTES,
    },
    revokeTimeoutMs: e.REVOKE_TIMEOUT_MS,
    webhooks: {
      pollMs: e.WEBHOOK_POLL_MS,
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      maxAttempts: e.WEBHOOK_MAX_ATTEMPTS,
      retryBaseMs: e.WEBHOOK_RETRY_BASE_MS,
      retryMaxMs: e.WEBHOOK_RETRY_MAX_MS,
    },
  };
}
