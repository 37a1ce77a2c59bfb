/**
 * `/v1/proxy/{integration}/{userId}/{path}` (any of GET HEAD POST PUT PATCH DELETE): the caller's
 * request goes to the provider's API base with the stored token injected (src/proxy). Role
 * `proxy` by path (src/http/access-rules.ts); the token read decision happens inside the service.
 * The path is taken from the raw URL (still percent-encoded), so nothing is decoded twice.
 */
import { z } from "@hono/zod-openapi";
import { BadRequestError } from "../../errors.ts";
import type { TokenProxy } from "../../proxy/service.ts";
import { PurposeHeadersSchema, TokenParamsSchema } from "../../tokens/schemas.ts";
import { createRouter, errorResponse } from "../router.ts";

const PREFIX = "/v1/proxy/";
export const PROXY_PATH = "/v1/proxy/{integration}/{userId}/{path}";

function decodeParam(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new BadRequestError(`invalid path: ${what} is not valid percent-encoding`);
  }
}

export function proxyRoutes(proxy: TokenProxy) {
  const router = createRouter();
  const responses = {
    200: {
      description:
        "the provider's answer, status and body as the provider sent them (hop-by-hop headers and cookies removed)",
    },
    400: errorResponse(
      "bad path (empty or dot segments, encoded slashes, anything leaving the provider's API base) or an integration without an API base",
    ),
    403: errorResponse(
      "not a proxy key, or denied by policy (details name the access request, deciding policy and reason)",
    ),
    404: errorResponse("no token stored for this integration and user"),
    409: errorResponse("REAUTH_REQUIRED: the token expired and cannot be refreshed"),
    413: errorResponse("request body larger than PROXY_MAX_REQUEST_BYTES"),
    502: errorResponse(
      "UPSTREAM_FAILED: no answer, a redirect to another host, a non-public address, or a response larger than PROXY_MAX_RESPONSE_BYTES",
    ),
  };
  for (const method of ["get", "post", "put", "patch", "delete"] as const) {
    router.openAPIRegistry.registerPath({
      method,
      path: PROXY_PATH,
      tags: ["proxy"],
      summary: `Forward a ${method.toUpperCase()} to the provider's API with the user's token injected (the caller never sees the token)`,
      description:
        "A decision like a token read (purpose from X-Purpose), then one TOKEN_PROXIED audit row (method, path template, status). " +
        "The query string and body pass through; the caller's Authorization, cookies and hop-by-hop headers do not. One retry with a refreshed token on a 401.",
      request: {
        params: TokenParamsSchema.extend({
          path: z.string().openapi({ description: "the provider API path, below its API base (may contain /)" }),
        }),
        headers: PurposeHeadersSchema,
      },
      responses,
    });
  }
  router.on(["GET", "POST", "PUT", "PATCH", "DELETE"], "/v1/proxy/:integration/:userId/*", async (c) => {
    const raw = new URL(c.req.url).pathname;
    if (!raw.startsWith(PREFIX)) throw new BadRequestError("invalid proxy path");
    const [integrationRaw = "", userIdRaw = "", ...rest] = raw.slice(PREFIX.length).split("/");
    const parsed = TokenParamsSchema.safeParse({
      integration: decodeParam(integrationRaw, "integration"),
      userId: decodeParam(userIdRaw, "userId"),
    });
    if (!parsed.success)
      throw new BadRequestError(`invalid path: ${parsed.error.issues[0]?.message ?? "bad integration or userId"}`);
    // Same rules as a token read's X-Purpose (length, no NUL or unpaired surrogates).
    const header = PurposeHeadersSchema.safeParse({ "x-purpose": c.req.header("x-purpose") });
    if (!header.success)
      throw new BadRequestError(`invalid header: X-Purpose: ${header.error.issues[0]?.message ?? "invalid"}`);
    const purpose = header.data["x-purpose"]?.trim();
    return proxy.forward(c.get("principal"), {
      ...parsed.data,
      method: c.req.method,
      rawPath: rest.join("/"),
      search: new URL(c.req.url).search,
      headers: c.req.raw.headers,
      body: c.req.raw.body,
      ...(purpose ? { purpose } : {}),
    });
  });
  return router;
}
