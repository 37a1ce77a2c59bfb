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
import { buildOpenApiDocument } from "./http/openapi.ts";
import { version as packageVersion } from "../package.json";
import type { Logger } from "./log.ts";
import type { Config } from "./config.ts";
import type { Database } from "./db/database.ts";

export interface AppDeps {
  config: Config;
  db: Database;
  log: Logger;
  readiness?: ReadinessCheck[];
}

export function createApp(deps: AppDeps) {
  const app = createRouter();
  app.use("*", requestContext(deps.log, { trustProxy: deps.config.trustProxy }));
  app.use("*", bodyLimit(deps.config.bodyLimitBytes));

  const readiness: ReadinessCheck[] = [
    { name: "database", check: async () => void (await deps.db.prisma.$queryRaw`SELECT 1`) },
    ...(deps.readiness ?? []),
  ];
  app.route("/", healthRoutes(readiness));

  app.route("/", docsRoutes(() => buildOpenApiDocument(app, packageVersion)));

  app.notFound((c) => c.json(errorBody("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`, c.get("requestId")), 404));
  app.onError((err, c) => respondWithError(err, c));
  return app;
}

export type App = ReturnType<typeof createApp>;
