/**
 * Which role each API path needs, in one table, enforced by path before any router runs (so the
 * routers of other areas need no auth code). Public paths are `isPublicPath` (openapi.ts). First
 * match wins; a /v1 path no rule names needs
 * admin (fail closed: a new route is never open by accident). Roles do not imply each other.
 */
import type { MiddlewareHandler } from "hono";
import type { Role } from "../access/principal.ts";
import { ForbiddenError, UnauthenticatedError } from "../errors.ts";
import type { AppEnv } from "./context.ts";
import { isPublicPath } from "./openapi.ts";

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface AccessRule {
  /** Omitted = every method. */
  methods?: readonly Method[];
  /** Matches the path itself and everything below it (segment-wise). */
  prefix?: string;
  /** Matches exactly this path shape, `{name}` standing for any one segment (checked before prefixes). */
  template?: string;
  /** "public" = no API key; otherwise any one of these roles. */
  roles: "public" | readonly Role[];
}

export const ACCESS_RULES: readonly AccessRule[] = [
  { prefix: "/v1/access-requests", methods: ["POST"], roles: ["reader"] },
  { prefix: "/v1/access-requests", methods: ["GET"], roles: ["admin"] },
  { prefix: "/v1/requesters", roles: ["admin"] },
  { prefix: "/v1/policies", roles: ["admin"] },
  { prefix: "/v1/keys", roles: ["admin"] },
  { prefix: "/v1/audit-logs", roles: ["admin"] },
  { prefix: "/v1/webhooks", roles: ["admin"] },
  { prefix: "/v1/tokens", methods: ["PUT", "DELETE"], roles: ["writer"] },
  // The only route that hands out a refresh token (SPEC v2 §8); listed before the reader rule.
  { template: "/v1/tokens/{integration}/{userId}/export", methods: ["GET"], roles: ["exporter"] },
  { prefix: "/v1/tokens", methods: ["GET"], roles: ["reader"] },
  { prefix: "/v1/users", methods: ["DELETE"], roles: ["writer"] },
  // Calls through the provider's API with the token injected; never a token read (any method).
  { prefix: "/v1/proxy", roles: ["proxy"] },
  // Outside /v1, guarded because app.ts installs the guard on it; public only on METRICS_PORT.
  { prefix: "/metrics", roles: ["admin"] },
];

const DEFAULT_ROLES: readonly Role[] = ["admin"];

// The table compiled once (it is consulted on every request): a method set and one path test per rule.
const COMPILED = ACCESS_RULES.map((rule) => {
  const methods = rule.methods ? new Set<string>(rule.methods) : null;
  if (rule.template !== undefined) {
    // `{name}` = one non-empty segment.
    const pattern = new RegExp(`^${rule.template.split("/").map(segmentPattern).join("/")}$`);
    return { methods, matches: (path: string) => pattern.test(path), roles: rule.roles };
  }
  const prefix = rule.prefix ?? "";
  const below = `${prefix}/`;
  return { methods, matches: (path: string) => path === prefix || path.startsWith(below), roles: rule.roles };
});

function segmentPattern(seg: string): string {
  return seg.startsWith("{") && seg.endsWith("}") ? "[^/]+" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function rolesFor(method: string, path: string): "public" | readonly Role[] {
  if (isPublicPath(path)) return "public"; // same list the OpenAPI document uses
  const m = method === "HEAD" ? "GET" : method;
  for (const rule of COMPILED) {
    if (rule.methods && !rule.methods.has(m)) continue;
    if (rule.matches(path)) return rule.roles;
  }
  return DEFAULT_ROLES;
}

/** Runs `authenticate` unless the path is public, then checks the role the table names. */
export function authorizeByPath(authenticate: MiddlewareHandler<AppEnv>): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const roles = rolesFor(c.req.method, c.req.path);
    if (roles === "public") return next();
    let authenticated = false;
    const res = await authenticate(c, async () => {
      authenticated = true;
    });
    if (!authenticated) return res;
    const principal = c.get("principal");
    if (!principal) throw new UnauthenticatedError("no principal");
    if (!principal.roles.some((r) => roles.includes(r))) {
      throw new ForbiddenError(
        `this API key's roles (${principal.roles.join(", ") || "none"}) do not include ${roles.join(" or ")}`,
      );
    }
    return next();
  };
}
