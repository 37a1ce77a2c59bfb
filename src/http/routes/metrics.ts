/**
 * `GET /metrics`, Prometheus text format. On the API port the path guard (ACCESS_RULES) makes it
 * admin-only; `metricsListenerApp` serves it without authentication on METRICS_HOST:METRICS_PORT.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { Hono } from "hono";
import type { Metrics } from "../../metrics/index.ts";
import type { AppEnv } from "../context.ts";
import { createRouter, errorResponse } from "../router.ts";

async function exposition(metrics: Metrics): Promise<Response> {
  return new Response(await metrics.render(), {
    status: 200,
    headers: { "Content-Type": metrics.contentType, "Cache-Control": "no-store" },
  });
}

export function metricsRoutes(metrics: Metrics) {
  return createRouter().openapi(
    createRoute({
      method: "get",
      path: "/metrics",
      tags: ["operations"],
      summary: "Prometheus metrics (text format 0.0.4); unauthenticated only on METRICS_PORT",
      responses: {
        200: { description: "metrics", content: { "text/plain": { schema: z.string() } } },
        401: errorResponse("unauthenticated"),
        403: errorResponse("not an admin"),
      },
    }),
    // The exposition is a raw text Response, outside the JSON response typing.
    (() => exposition(metrics)) as never,
  );
}

/** The app of the separate, unauthenticated metrics listener: /metrics and nothing else. */
export function metricsListenerApp(metrics: Metrics) {
  const app = new Hono<AppEnv>().get("/metrics", () => exposition(metrics));
  app.notFound((c) => c.text("not found\n", 404));
  return app;
}
