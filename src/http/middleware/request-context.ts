/**
 * Gives every request an id (a caller's well-formed X-Request-Id is kept), a child logger and
 * its client address — the peer, or behind `TRUST_PROXY` = N trusted proxies the entry N places
 * from the right of X-Forwarded-For (the one the outermost trusted proxy wrote), never a
 * client-chosen leftmost one.
 */
import { isIP } from "node:net";
import type { Context, MiddlewareHandler } from "hono";
import type { Logger } from "../../log.ts";
import type { AppEnv } from "../context.ts";
import { ValidationError } from "../../errors.ts";

const wellFormed = /^[A-Za-z0-9._:-]{8,128}$/;

export function requestContext(log: Logger, opts: { trustProxy: number }): MiddlewareHandler<AppEnv> {
  const hops = opts.trustProxy;
  return async (c, next) => {
    const given = c.req.header("x-request-id");
    const requestId = given && wellFormed.test(given) ? given : Bun.randomUUIDv7();
    const requestLog = log.child({ requestId });
    c.set("requestId", requestId);
    c.set("log", requestLog);
    c.header("X-Request-Id", requestId);
    // A trusted proxy's entry is resolved (and a malformed one refused) for every request; the peer
    // address is asked of the server only when something needs it (clientAddressOf).
    if (hops > 0) {
      const forwarded = forwardedAddress(c.req.header("x-forwarded-for"), hops);
      if (forwarded !== null) c.set("clientAddress", forwarded);
    }
    const started = performance.now();
    await next();
    requestLog.info("request", {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round((performance.now() - started) * 100) / 100,
    });
  };
}

/** The request's client address (see clientAddress), the peer's looked up once on first use. */
export function clientAddressOf(c: Context<AppEnv>): string {
  let address: string | undefined = c.get("clientAddress");
  if (address === undefined) {
    address = peerAddress(c);
    c.set("clientAddress", address);
  }
  return address;
}

function peerAddress(c: Context<AppEnv>): string {
  // Bun.serve passes the server as `env` to fetch; requestIP is the peer address.
  const server = c.env as { requestIP?(r: Request): { address: string } | null } | undefined;
  return server?.requestIP?.(c.req.raw)?.address ?? "unknown";
}

/**
 * The client address with `hops` trusted proxies in front. Each proxy appends the address it
 * received the request from, so the entry `hops` places from the right was written by the
 * outermost trusted proxy; everything left of it came from the client and is ignored.
 * - hops 0, no header, or fewer entries than hops (a request that did not come through every
 *   proxy, e.g. a balancer's health check): the peer address.
 * - the chosen entry is not an IP address (optionally `[v6]:port` or `v4:port`): 400, since a
 *   trusted proxy never writes that; it means TRUST_PROXY counts more hops than there are, and
 *   the entry is the client's.
 */
export function clientAddress(forwardedFor: string | undefined, peer: string, hops: number): string {
  return (hops > 0 ? forwardedAddress(forwardedFor, hops) : null) ?? peer;
}

/** The entry `hops` (> 0) places from the right, or null when the peer address applies. */
function forwardedAddress(forwardedFor: string | undefined, hops: number): string | null {
  if (forwardedFor === undefined) return null;
  const entries = forwardedFor.split(",").map((e) => e.trim());
  if (entries.length < hops) return null;
  const chosen = entries[entries.length - hops]!;
  const address = parseAddress(chosen);
  if (address === null) {
    throw new ValidationError(
      `X-Forwarded-For: the entry ${hops} from the right is not an IP address (is TRUST_PROXY=${hops} more proxies than are in front of the service?)`,
    );
  }
  return address;
}

/** An IP address, with a `:port` or IPv6 brackets removed; null when it is not one. */
function parseAddress(entry: string): string | null {
  if (entry.length === 0 || entry.length > 64) return null;
  let host = entry;
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(entry);
  if (bracketed) host = bracketed[1]!;
  else if (/^[\d.]+:\d{1,5}$/.test(entry)) host = entry.slice(0, entry.lastIndexOf(":"));
  return isIP(host) === 0 ? null : host.toLowerCase();
}
