/** Liveness and readiness. Readiness runs every registered check (database, active key…). */
import { createRoute, z } from "@hono/zod-openapi";
import { createRouter, errorResponse } from "../router.ts";

export type ReadinessCheck = { name: string; check: () => Promise<void> };

export const HealthSchema = z.object({ status: z.literal("ok") }).openapi("Health");
export const ReadySchema = z
  .object({ status: z.enum(["ready", "not-ready"]), checks: z.record(z.string(), z.string()) })
  .openapi("Readiness");

export function healthRoutes(checks: ReadinessCheck[]) {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/healthz",
        tags: ["health"],
        summary: "Liveness: the process is up",
        responses: { 200: { description: "alive", content: { "application/json": { schema: HealthSchema } } } },
      }),
      (c) => c.json({ status: "ok" as const }, 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/readyz",
        tags: ["health"],
        summary: "Readiness: database reachable and an active master key loaded",
        responses: {
          200: { description: "ready", content: { "application/json": { schema: ReadySchema } } },
          503: { description: "not ready", content: { "application/json": { schema: ReadySchema } } },
          500: errorResponse("internal error"),
        },
      }),
      async (c) => {
        const results: Record<string, string> = {};
        let ok = true;
        for (const { name, check } of checks) {
          try {
            await check();
            results[name] = "ok";
          } catch (err) {
            ok = false;
            results[name] = "failed";
            c.get("log").warn("readiness check failed", { check: name, err });
          }
        }
        return ok
          ? c.json({ status: "ready" as const, checks: results }, 200)
          : c.json({ status: "not-ready" as const, checks: results }, 503);
      },
    );
}
