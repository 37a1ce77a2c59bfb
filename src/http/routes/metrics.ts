/**
 * `GET /metrics`, Prometheus text format. On the API port the path guard (ACCESS_RULES) makes it
 * admin-only; `metricsListener` serves it without authentication on METRICS_HOST:METRICS_PORT.
 */
import { Hono } from "hono";
import type { Metrics } from "../../metrics/index.ts";
import type { AppEnv } from "../context.ts";

export function metricsRoutes(metrics: Metrics) {
  return new Hono<AppEnv>().get("/metrics", async (c) => {
    c.header("Content-Type", metrics.contentType);
    c.header("Cache-Control", "no-store");
    return c.body(await metrics.render(), 200);
  });
}

/** The app of the separate, unauthenticated metrics listener: /metrics and nothing else. */
export function metricsListenerApp(metrics: Metrics) {
  const app = metricsRoutes(metrics);
  app.notFound((c) => c.text("not found\n", 404));
  return app;
}
