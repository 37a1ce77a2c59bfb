/** Times every request and counts it under its route template (never the raw path). */
import type { MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { Metrics } from "../../metrics/index.ts";
import type { AppEnv } from "../context.ts";

export function requestMetrics(metrics: Metrics): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    await next();
    // The last matched route is the operation's handler (the ones before it are middleware, method
    // ALL); a request no operation matched (404) or that stopped in middleware before one is "unmatched".
    const routes = matchedRoutes(c);
    const last = routes[routes.length - 1];
    const route = last && last.method !== "ALL" ? last.path : "unmatched";
    metrics.observeRequest(route, c.req.method, c.res.status, (performance.now() - started) / 1000);
  };
}
