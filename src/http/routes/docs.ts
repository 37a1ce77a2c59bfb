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
import { staticAssets } from "../static-assets.ts";

type OpenApiDocument = object;

const CSS = "text/css; charset=utf-8";
const JS = "text/javascript; charset=utf-8";
const DIST_FILES: Record<string, string> = {
  "swagger-ui.css": CSS,
  "swagger-ui-bundle.js": JS,
  "swagger-ui-standalone-preset.js": JS,
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
  const asset = staticAssets(
    Object.fromEntries(
      Object.entries(DIST_FILES).map(([file, contentType]) => [
        file,
        {
          contentType,
          cacheControl: "public, max-age=86400",
          load: () => readFileSync(join(distDir, file)) as Uint8Array<ArrayBuffer>,
        },
      ]),
    ),
  );
  let doc: OpenApiDocument | undefined;
  return new Hono<AppEnv>()
    .get("/openapi.json", (c) => {
      doc ??= document();
      return c.json(doc);
    })
    .get("/docs", (c) => c.html(page))
    .get("/docs/assets/init.js", (c) => c.body(init, 200, { "content-type": JS }))
    .get("/docs/assets/:file", async (c) => {
      const served = await asset(c.req.param("file"));
      return served ? c.body(served.body, 200, served.headers) : c.notFound();
    });
}
