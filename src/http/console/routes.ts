/**
 * `GET /console`: the admin web console (SPEC §11). The service serves one static page, one
 * script bundled from `src/console/` by `Bun.build` on first request (memoised per process) and
 * one stylesheet. The page holds no data and no credentials: the script signs in with an admin
 * API key and calls the public `/v1` API like any other client. Every response carries a strict
 * Content-Security-Policy (no inline script or style, no eval, Trusted Types so no string can
 * reach innerHTML) and refuses framing.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRouter, errorResponse } from "../router.ts";
import { NotFoundError } from "../../errors.ts";
import { staticAssets } from "../static-assets.ts";

const consoleDir = join(import.meta.dir, "../../console");

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

const securityHeaders: Record<string, string> = {
  "content-security-policy": CONSOLE_CSP,
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
};

const page = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>chronokms console</title>
  <link rel="icon" type="image/svg+xml" href="/console/assets/icon.svg">
  <link rel="stylesheet" href="/console/assets/console.css">
  <script src="/console/assets/console.js" defer></script>
</head>
<body>
  <noscript>The chronokms console needs JavaScript.</noscript>
  <div id="app"></div>
</body>
</html>
`;

/** The console script, bundled and minified from `src/console/main.ts` (once per process: see staticAssets). */
async function buildConsoleScript(): Promise<string> {
  const out = await Bun.build({
    entrypoints: [join(consoleDir, "main.ts")],
    target: "browser",
    minify: true,
    format: "esm",
  });
  if (!out.success || !out.outputs[0]) throw new Error(`console bundle failed: ${out.logs.map(String).join("; ")}`);
  return out.outputs[0].text();
}

const icon = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#172033"/><circle cx="16" cy="16" r="9" fill="none" stroke="#6f95ff" stroke-width="3"/><path d="M16 10v6l4 3" fill="none" stroke="#fff" stroke-width="2.5" stroke-linecap="round"/></svg>`;

const asset = staticAssets({
  "console.js": { contentType: "text/javascript; charset=utf-8", cacheControl: "no-cache", load: buildConsoleScript },
  "console.css": {
    contentType: "text/css; charset=utf-8",
    cacheControl: "no-cache",
    load: () => readFileSync(join(consoleDir, "console.css"), "utf8"),
  },
  "icon.svg": { contentType: "image/svg+xml", cacheControl: "public, max-age=86400", load: () => icon },
});

export function consoleRoutes() {
  const withHeaders = async (c: { header(k: string, v: string): void }, next: () => Promise<void>) => {
    await next();
    for (const [k, v] of Object.entries(securityHeaders)) c.header(k, v);
  };
  const router = createRouter();
  router.use("/console", withHeaders);
  router.use("/console/*", withHeaders);
  return router
    .openapi(
      createRoute({
        method: "get",
        path: "/console",
        operationId: "getConsole",
        tags: ["console"],
        summary: "The admin web console (a static page; it signs in with an admin API key and calls this /v1 API)",
        responses: { 200: { description: "the console page", content: { "text/html": { schema: z.string() } } } },
      }),
      (c) => c.html(page, 200, { "cache-control": "no-store" }),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/console/assets/{file}",
        operationId: "getConsoleAsset",
        tags: ["console"],
        summary: "The console's script, stylesheet and icon",
        request: {
          params: z.object({
            file: z
              .string()
              .max(64)
              .openapi({ param: { name: "file", in: "path" }, example: "console.js" }),
          }),
        },
        responses: {
          200: {
            description: "the asset",
            content: {
              "text/javascript": { schema: z.string() },
              "text/css": { schema: z.string() },
              "image/svg+xml": { schema: z.string() },
            },
          },
          404: errorResponse("no such asset"),
        },
      }),
      async (c) => {
        const file = c.req.valid("param").file;
        const served = await asset(file);
        if (!served) throw new NotFoundError(`console asset ${JSON.stringify(file)}`); // the one error shape
        return c.body(served.body, 200, served.headers);
      },
    );
}
