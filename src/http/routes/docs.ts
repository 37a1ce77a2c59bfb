/**
 * `GET /openapi.json` (OpenAPI 3.1, generated from the same zod schemas that validate) and
 * `GET /docs` (Swagger UI). The UI's assets are served from the swagger-ui-dist package, not a
 * CDN, so the page works on a closed network.
 */
import { Hono } from "hono";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { AppEnv } from "../context.ts";

type OpenApiDocument = object;

const assets: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

const page = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>chronokms API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
  <script src="/docs/assets/init.js"></script>
</body>
</html>`;

const init = `window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout",
});`;

export function docsRoutes(document: () => OpenApiDocument) {
  const distDir = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
  const cache = new Map<string, Uint8Array>();
  let doc: OpenApiDocument | undefined;
  return new Hono<AppEnv>()
    .get("/openapi.json", (c) => c.json((doc ??= document())))
    .get("/docs", (c) => c.html(page))
    .get("/docs/assets/init.js", (c) => c.body(init, 200, { "content-type": "text/javascript; charset=utf-8" }))
    .get("/docs/assets/:file", (c) => {
      const file = c.req.param("file");
      const type = assets[file];
      if (!type) return c.notFound();
      let bytes = cache.get(file);
      if (!bytes) cache.set(file, (bytes = readFileSync(join(distDir, file))));
      return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
        "content-type": type,
        "cache-control": "public, max-age=86400",
      });
    });
}
