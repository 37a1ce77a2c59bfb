/**
 * The SDK in a real browser (headless Chromium, WebCrypto only): the browser build opens a grant's
 * data sealed by the service's envelope and a grant sealed to the requester's key the way the
 * service seals it, refuses a wrong context with the exported DecryptionFailedError, and a
 * DataSource in the page seals data the service's envelope opens.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { chromiumPath, launchChromium, requireBrowserIfAsked, type Browser } from "../../scripts/lib/chromium.ts";
import { toBase64url, utf8Decode } from "../../src/crypto/bytes.ts";
import { GRANT_JWE_TYP } from "../../src/access/grants.ts";
import { sealEcdhEs } from "../../src/crypto/ecdh-es.ts";
import { decryptEnvelope, encryptEnvelope } from "../../src/crypto/envelope.ts";
import { deriveCover } from "../../src/crypto/ggm.ts";
import { generateMasterKeyPair, masterScalar } from "../../src/crypto/master-key.ts";
import { signSliceKey } from "../../src/crypto/sign.ts";
import { SliceKeyDeriver, sliceIndex, sliceRange } from "../../src/crypto/slice-keys.ts";
import { projectRoot } from "../../src/db/migration-files.ts";

requireBrowserIfAsked();

const SLICE_SECONDS = 3600;
const VERSION = 2;

if (chromiumPath) {
  let browser: Browser;
  let server: ReturnType<typeof Bun.serve>;
  beforeAll(async () => {
    const build = await Bun.build({ entrypoints: [join(projectRoot, "src/client/index.ts")], target: "browser" });
    expect(build.success).toBe(true);
    const sdk = await build.outputs[0]!.text();
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) =>
        new URL(req.url).pathname === "/sdk.js"
          ? new Response(sdk, { headers: { "content-type": "text/javascript" } })
          : new Response('<!doctype html><script type="module">window.sdk = await import("/sdk.js");</script>', {
              headers: { "content-type": "text/html" },
            }),
    });
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    server?.stop(true);
  });

  test("DataViewer and DataSource run on the browser's WebCrypto, interoperating with the service", async () => {
    const master = await generateMasterKeyPair({ kid: String(VERSION) });
    const deriver = new SliceKeyDeriver({
      masterScalar: masterScalar(master.privateJwk),
      version: VERSION,
      sliceSeconds: SLICE_SECONDS,
    });
    const now = Date.now();
    const slice = sliceIndex(now, SLICE_SECONDS);
    const key = await deriver.get(slice);
    const jwe = await encryptEnvelope("sealed by the service", {
      publicKey: key.publicJwk,
      kid: key.kid,
      ts: now,
      ctx: "sensor:1",
    });
    const seeds = deriveCover(deriver.rootSeed, slice, slice + 1).map((n) => ({
      depth: n.depth,
      index: n.index,
      seed: toBase64url(n.seed),
    }));
    const grant = {
      id: "g",
      granted: true,
      expiresAt: new Date(now + 3600_000).toISOString(),
      keyVersion: VERSION,
      sliceSeconds: SLICE_SECONDS,
      slices: { from: slice, to: slice + 1 },
      keys: [],
      seeds,
    };
    // Sealed to the requester's key with the header src/access/grants.ts writes.
    const requester = await generateMasterKeyPair();
    const { keys: _k, seeds: _s, ...head } = grant;
    const sealedGrant = {
      ...head,
      encrypted: await sealEcdhEs(JSON.stringify({ keys: [], seeds }), requester.publicJwk, {
        typ: GRANT_JWE_TYP,
        cty: "json",
        gid: grant.id,
        ver: VERSION,
        slices: grant.slices,
      }),
    };
    const r = sliceRange(slice, SLICE_SECONDS);
    const statement = {
      version: VERSION,
      slice,
      kid: key.kid,
      sliceSeconds: SLICE_SECONDS,
      status: "active",
      from: new Date(r.startMs).toISOString(),
      to: new Date(r.endMs).toISOString(),
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 3600_000).toISOString(),
      publicJwk: key.publicJwk,
      signature: await signSliceKey(key.publicJwk, master.privateJwk, { sliceSeconds: SLICE_SECONDS, iat: now }),
    };

    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${server.port}/`);
    await page.waitForFunction(() => "sdk" in window);
    const out = await page.evaluate(
      async ({ grant, sealedGrant, requesterKey, jwe, statement, masterKey, now }) => {
        // biome-ignore lint/suspicious/noExplicitAny: the page's global, set by the module script
        const sdk = (window as any).sdk;
        const viewer = await sdk.DataViewer.fromGrant(grant);
        const opened = await viewer.decryptToString(jwe, { expectedCtx: "sensor:1" });
        const unsealed = await sdk.DataViewer.fromGrant(sealedGrant, { privateKeyJwk: requesterKey });
        const openedSealed = await unsealed.decryptToString(jwe, { expectedCtx: "sensor:1" });
        const refused = await viewer.decrypt(jwe, { expectedCtx: "sensor:2" }).then(
          () => "opened",
          (e: { name: string; code: string }) =>
            `${e.name} ${e.code} ${e instanceof sdk.DecryptionFailedError && e instanceof sdk.CryptoError}`,
        );
        const client = { slicePublicKey: async () => statement };
        const source = new sdk.DataSource({ client, masterKeys: [masterKey], now: () => now });
        const sealed = await source.encrypt("sealed in the browser", { ctx: "sensor:9", timestamp: now });
        return { opened, openedSealed, refused, sealed: sealed.jwe as string, subtle: typeof crypto.subtle.deriveBits };
      },
      { grant, sealedGrant, requesterKey: requester.privateJwk, jwe, statement, masterKey: master.publicJwk, now },
    );
    expect(errors).toEqual([]);
    expect(out.subtle).toBe("function");
    expect(out.opened).toBe("sealed by the service");
    expect(out.openedSealed).toBe("sealed by the service");
    expect(out.refused).toBe("DecryptionFailedError DECRYPTION_FAILED true");
    const plain = await decryptEnvelope(out.sealed, { privateKey: key.privateJwk, expectedCtx: "sensor:9" });
    expect(utf8Decode(plain)).toBe("sealed in the browser");
    await page.close();
  }, 60_000);
}
