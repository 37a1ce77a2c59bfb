/** Gives every request an id (a caller's well-formed X-Request-Id is kept) and a child logger. */
import type { MiddlewareHandler } from "hono";
import type { Logger } from "../../log.ts";
import type { AppEnv } from "../context.ts";

const wellFormed = /^[A-Za-z0-9._:-]{8,128}$/;

export function requestContext(log: Logger, opts: { trustProxy: boolean }): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const given = c.req.header("x-request-id");
    const requestId = given && wellFormed.test(given) ? given : Bun.randomUUIDv7();
    c.set("requestId", requestId);
    c.set("log", log.child({ requestId }));
    c.set("clientAddress", clientAddress(c, opts.trustProxy));
    c.header("X-Request-Id", requestId);
    const started = performance.now();
    await next();
    c.get("log").info("request", {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round((performance.now() - started) * 100) / 100,
    });
  };
}

function clientAddress(c: Parameters<MiddlewareHandler<AppEnv>>[0], trustProxy: boolean): string {
  if (trustProxy) {
    const fwd = c.req.header("x-forwarded-for")?.split(",")[0]?.trim();
    if (fwd) return fwd;
  }
  // Bun.serve passes the server as `env` to fetch; requestIP is the peer address.
  const server = c.env as { requestIP?(r: Request): { address: string } | null } | undefined;
  return server?.requestIP?.(c.req.raw)?.address ?? "unknown";
}
