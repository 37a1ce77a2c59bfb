/**
 * Composition root of the HTTP surface: `createApp(deps)` builds the Hono app for production and
 * tests alike. It wires middleware and routers; it holds no business logic.
 */
import { createRouter } from "./http/router.ts";
import { respondWithError, errorBody } from "./http/errors.ts";
import { requestContext } from "./http/middleware/request-context.ts";
import { bodyLimit } from "./http/middleware/body-limit.ts";
import { healthRoutes, type ReadinessCheck } from "./http/routes/health.ts";
import { docsRoutes } from "./http/routes/docs.ts";
import { consoleRoutes } from "./http/console/routes.ts";
import { buildOpenApiDocument } from "./http/openapi.ts";
import { version as packageVersion } from "../package.json";
import { auditRoutes } from "./http/routes/audit.ts";
import type { AuditWriter } from "./audit/writer.ts";
import { keyManagementRoutes, publicKeyRoutes } from "./http/routes/keys.ts";
import type { ManagedKeyService } from "./keys/service.ts";
import { rewrapInBackground } from "./keys/rewrap.ts";
import type { Logger } from "./log.ts";
import type { Config } from "./config.ts";
import type { Database } from "./db/database.ts";
import type { AccessServices } from "./access/index.ts";
import { authenticate } from "./http/middleware/auth.ts";
import { authorizeByPath } from "./http/access-rules.ts";
import { requesterRoutes } from "./http/routes/requesters.ts";
import { policyRoutes } from "./http/routes/policies.ts";
import { accessRequestRoutes } from "./http/routes/access-requests.ts";
import { tokenRoutes } from "./http/routes/tokens.ts";
import type { TokenVault } from "./tokens/vault.ts";
import { proxyRoutes } from "./http/routes/proxy.ts";
import type { TokenProxy } from "./proxy/service.ts";
import { webhookRoutes } from "./http/routes/webhooks.ts";
import type { WebhookService } from "./webhooks/service.ts";
import { ScheduleStore } from "./keys/schedule.ts";
import { systemClock } from "./clock.ts";
import type { Metrics } from "./metrics/index.ts";
import { requestMetrics } from "./http/middleware/metrics.ts";
import { metricsRoutes } from "./http/routes/metrics.ts";

export interface AppDeps {
  config: Config;
  db: Database;
  log: Logger;
  audit: AuditWriter;
  keys: ManagedKeyService;
  readiness?: ReadinessCheck[];
  access: AccessServices;
  tokens: TokenVault;
  /** The token proxy (always built by the runtime; tests that compose their own app may leave it out). */
  proxy?: TokenProxy;
  /** Webhook endpoints (always built by the runtime; optional for tests that compose their own app). */
  webhooks?: WebhookService;
  /** The rotation schedule store; tests that build deps by hand get one on the same database. */
  schedule?: ScheduleStore;
  /** Prometheus metrics: request timing here, `GET /metrics` (admin) on this app. */
  metrics?: Metrics;
}

export function createApp(deps: AppDeps) {
  const app = createRouter();
  if (deps.metrics) app.use("*", requestMetrics(deps.metrics));
  app.use("*", requestContext(deps.log, { trustProxy: deps.config.trustProxy }));
  // Proxied bodies are streamed and counted against PROXY_MAX_REQUEST_BYTES by the proxy itself.
  const limit = bodyLimit(deps.config.bodyLimitBytes);
  app.use("*", (c, next) => (c.req.path.startsWith("/v1/proxy/") ? next() : limit(c, next)));
  // Every /v1 route: API key and role by path (src/http/access-rules.ts). Registered before
  // any router, since Hono runs handlers in registration order.
  const { apiKeys, limiter, audit } = deps.access;
  const guard = authorizeByPath(authenticate({ apiKeys, limiter, audit }));
  app.use("/v1/*", guard);
  app.use("/metrics", guard);

  const readiness: ReadinessCheck[] = [
    { name: "database", check: async () => void (await deps.db.prisma.$queryRaw`SELECT 1`) },
    ...(deps.readiness ?? []),
  ];
  app.route("/", healthRoutes(readiness));
  app.route("/", publicKeyRoutes(deps.keys));
  app.route(
    "/",
    keyManagementRoutes(
      deps.keys,
      deps.schedule ?? new ScheduleStore({ db: deps.db, audit: deps.audit, clock: systemClock }),
      { onRotated: () => rewrapInBackground(deps.keys, deps.log) },
    ),
  );
  const webhooks = deps.webhooks;
  app.route(
    "/",
    auditRoutes({
      db: deps.db,
      audit: deps.audit,
      keys: deps.keys,
      anchorFile: deps.config.auditAnchorFile,
      ...(webhooks ? { onVerified: (r) => webhooks.verified(r) } : {}),
    }),
  );
  if (deps.metrics) app.route("/", metricsRoutes(deps.metrics));

  app.route("/", requesterRoutes(deps.access));
  app.route("/", policyRoutes(deps.access));
  app.route("/", accessRequestRoutes(deps.access));
  app.route("/", tokenRoutes(deps.tokens));
  if (deps.proxy) app.route("/", proxyRoutes(deps.proxy));
  if (deps.webhooks) app.route("/", webhookRoutes(deps.webhooks));

  app.route(
    "/",
    docsRoutes(() => buildOpenApiDocument(app, packageVersion)),
  );
  app.route("/", consoleRoutes());

  app.notFound((c) =>
    c.json(errorBody("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`, c.get("requestId")), 404),
  );
  app.onError((err, c) => respondWithError(err, c));
  return app;
}

export type App = ReturnType<typeof createApp>;
