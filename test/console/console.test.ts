/**
 * The console's server side without a browser: what `/console` serves, its security headers, the
 * script's size budget, and source rules the CSP backs up (no HTML strings, no eval).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createTestDatabase, type TestDatabase } from "../support/databases.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import { CONSOLE_CSP } from "../../src/http/console/routes.ts";

const consoleSrc = join(import.meta.dir, "../../src/console");
const MAX_SCRIPT_GZIP_BYTES = 150 * 1024;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

describe("GET /console", () => {
  let db: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase("pglite");
    t = await startTestApp(db);
  }, 60_000);
  afterAll(async () => {
    await t.close();
    await db.close();
  });

  test("serves the page with a strict CSP, no framing, and no inline script or style", async () => {
    const res = await t.app.request("/console");
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toBe(CONSOLE_CSP);
    const directives = Object.fromEntries(
      csp.split(/;\s*/).map((d) => [d.split(" ")[0], d.split(" ").slice(1).join(" ")]),
    );
    expect(directives["default-src"]).toBe("'none'");
    expect(directives["script-src"]).toBe("'self'");
    expect(directives["style-src"]).toBe("'self'");
    expect(directives["frame-ancestors"]).toBe("'none'");
    expect(directives["require-trusted-types-for"]).toBe("'script'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).not.toContain("unsafe-eval");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const html = await res.text();
    for (const [, attrs = "", body = ""] of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
      expect(attrs).toContain('src="/console/assets/');
      expect(body.trim()).toBe("");
    }
    expect(html).not.toMatch(/<style\b|\sstyle=|\son[a-z]+=/i);
  });

  test("the assets carry the same headers; unknown assets are 404", async () => {
    for (const path of ["/console/assets/console.js", "/console/assets/console.css", "/console/assets/icon.svg"]) {
      const res = await t.app.request(path);
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      expect(res.headers.get("content-security-policy")).toBe(CONSOLE_CSP);
      expect(res.headers.get("x-frame-options")).toBe("DENY");
    }
    expect((await t.app.request("/console/assets/console.js")).headers.get("content-type")).toContain(
      "text/javascript",
    );
    const missing = await t.app.request("/console/assets/nope.js");
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
  });

  test(`the script is under ${MAX_SCRIPT_GZIP_BYTES / 1024} kB gzipped and uses no eval`, async () => {
    const script = await (await t.app.request("/console/assets/console.js")).text();
    const gzipped = Bun.gzipSync(new TextEncoder().encode(script)).length;
    console.log(`console.js: ${script.length} bytes, ${gzipped} bytes gzipped`);
    expect(gzipped).toBeLessThan(MAX_SCRIPT_GZIP_BYTES);
    expect(script).not.toMatch(/\beval\(|new Function\(/);
  });

  test("the console adds no API route: nothing it serves is under /v1", () => {
    const consolePaths = t.app.routes.filter((r) => r.path.startsWith("/console")).map((r) => r.path);
    expect(consolePaths.length).toBeGreaterThan(0);
    expect(t.app.routes.filter((r) => r.path.startsWith("/v1/console"))).toEqual([]);
  });
});

test("console sources never build DOM from strings (no innerHTML, outerHTML, insertAdjacentHTML, document.write)", () => {
  const offenders = sources(consoleSrc).filter((f) =>
    /\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\(|new Function\(/.test(
      readFileSync(f, "utf8"),
    ),
  );
  expect(offenders).toEqual([]);
});

test("console sources call the API only through the SDK client on /v1 paths", () => {
  for (const f of sources(consoleSrc)) {
    const text = readFileSync(f, "utf8");
    for (const [, path] of text.matchAll(/request(?:<[^>]*>)?\(\s*"[A-Z]+",\s*[`"]([^`"]+)/g))
      expect({ f, path: path!.startsWith("/v1/") }).toEqual({ f, path: true });
    // The one fetch call is session.ts's wrapper handed to the SDK client (it watches for 401s).
    const rawFetch = /\bfetch\(/.test(text) && !f.endsWith("/session.ts");
    expect({ f, rawFetch }).toEqual({ f, rawFetch: false });
  }
});
