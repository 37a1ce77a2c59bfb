/** Key routes through the real app: JWKS, signed slice public keys (valid and tampered), /v1/keys counts, rotation. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { sliceIndex, verifySliceKey } from "../../src/crypto/index.ts";
import { UNCACHED_LOOKUPS_BURST } from "../../src/keys/slice-statements.ts";
import { asAdmin, startTestApp, type TestApp } from "../support/app.ts";
import { describeEachDb } from "../support/databases.ts";
import { agePastRetireGrace, backdateVersion, seedTokens } from "./helpers.ts";

describeEachDb("key routes", (h) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(h.db, { listen: true, env: { SLICE_SECONDS: "3600" } }); // the hour slices below
  });
  afterAll(async () => t?.close());

  test("GET /.well-known/jwks.json over a real port: the master public key, no private member", async () => {
    const res = await fetch(`${t.url}/.well-known/jwks.json`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { keys: Record<string, unknown>[] };
    expect(body.keys).toHaveLength(1);
    expect(body.keys[0]).toMatchObject({ kty: "EC", crv: "P-256", kid: "1", alg: "ES256", use: "sig" });
    expect(body.keys[0]).not.toHaveProperty("d");
    const ready = await fetch(`${t.url}/readyz`);
    expect(await ready.json()).toMatchObject({ status: "ready", checks: { database: "ok", masterKey: "ok" } });
  });

  test("GET /v1/time-slices/{slice}/public-key: the JWS verifies with the JWKS key; a tampered one does not", async () => {
    const slice = sliceIndex(Date.now(), 3600);
    const res = await t.app.request(`/v1/time-slices/${slice}/public-key`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      version: number;
      slice: number;
      kid: string;
      sliceSeconds: number;
      from: string;
      to: string;
      publicJwk: Record<string, string>;
      signature: string;
    };
    expect(body).toMatchObject({
      version: 1,
      slice,
      kid: `1:${slice}`,
      sliceSeconds: 3600,
      from: new Date(slice * 3_600_000).toISOString(),
      to: new Date((slice + 1) * 3_600_000).toISOString(),
    });
    expect(body.publicJwk).toMatchObject({ kty: "EC", crv: "P-256", kid: `1:${slice}`, alg: "ECDH-ES", use: "enc" });
    expect(body.publicJwk).not.toHaveProperty("d");
    const jwks = (await (await t.app.request("/.well-known/jwks.json")).json()) as {
      keys: { kid: string; kty: "EC"; crv: "P-256"; x: string; y: string }[];
    };
    const master = jwks.keys.find((k) => k.kid === String(body.version))!;
    const statement = await verifySliceKey(body.signature, master, { version: 1, slice, sliceSeconds: 3600 });
    expect(statement.jwk.x).toBe(body.publicJwk.x!);
    expect(statement.jwk.y).toBe(body.publicJwk.y!);
    // Tampered payload (another slice's key swapped in) and tampered signature both fail.
    const [hdr, payload, sig] = body.signature.split(".") as [string, string, string];
    const p = JSON.parse(Buffer.from(payload, "base64url").toString());
    p.slice = slice + 1;
    const forged = `${hdr}.${Buffer.from(JSON.stringify(p)).toString("base64url")}.${sig}`;
    await expect(verifySliceKey(forged, master)).rejects.toThrow();
    const badSig = `${hdr}.${payload}.${(sig[0] === "A" ? "B" : "A") + sig.slice(1)}`;
    await expect(verifySliceKey(badSig, master)).rejects.toThrow();
    // Cached: the same signature again.
    const again = (await (await t.app.request(`/v1/time-slices/${slice}/public-key`)).json()) as { signature: string };
    expect(again.signature).toBe(body.signature);
  });

  test("slice and version validation: 400 for bad slices, 404 for an unknown version", async () => {
    for (const bad of ["-1", "abc", "1.5", "01", "4294967296", "99999999999", "%20"]) {
      const res = await t.app.request(`/v1/time-slices/${bad}/public-key`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("VALIDATION_FAILED");
    }
    // The largest slice index is beyond the representable time range at 3600 s slices: still a clear 400.
    expect((await t.app.request(`/v1/time-slices/4294967295/public-key`)).status).toBe(400);
    expect((await t.app.request(`/v1/time-slices/${sliceIndex(Date.now(), 3600)}/public-key`)).status).toBe(200);
    expect((await t.app.request(`/v1/time-slices/0/public-key`)).status).toBe(400); // outside the signing window (v2)
    expect((await t.app.request(`/v1/time-slices/5/public-key?version=0`)).status).toBe(400);
    expect((await t.app.request(`/v1/time-slices/5/public-key?version=abc`)).status).toBe(400);
    expect((await t.app.request(`/v1/time-slices/5/public-key?other=1`)).status).toBe(400);
    const r = await t.app.request(`/v1/time-slices/5/public-key?version=77`);
    expect(r.status).toBe(404);
  });

  test("GET /v1/keys counts records per version; POST /v1/keys/rotate rotates and re-encrypts in the background", async () => {
    await seedTokens(h.db, t.runtime.keys, 12);
    const list = (await (await t.app.request("/v1/keys", asAdmin())).json()) as {
      versions: { version: number; status: string; records: number; recordsByStore: Record<string, number> }[];
    };
    expect(list.versions).toEqual([
      expect.objectContaining({ version: 1, status: "active", records: 12, recordsByStore: { oauth_tokens: 12 } }),
    ]);

    // Version 1 has been active for three hours (its statements cover only its active period).
    await backdateVersion(h.db, 1, new Date(Date.now() - 3 * 3600_000));
    const rot = await t.app.request("/v1/keys/rotate", asAdmin({ method: "POST" }));
    expect(rot.status).toBe(201);
    expect(await rot.json()).toEqual({ version: 2, previous: 1, pending: 12 });
    let versions = list.versions;
    for (const until = Date.now() + 5000; Date.now() < until; await Bun.sleep(50)) {
      versions = ((await (await t.app.request("/v1/keys", asAdmin())).json()) as typeof list).versions;
      if (versions.find((v) => v.version === 2)?.records === 12) break;
    }
    expect(versions).toEqual([
      expect.objectContaining({ version: 1, status: "decrypt-only", records: 0 }),
      expect.objectContaining({ version: 2, status: "active", records: 12 }),
    ]);
    const jwks = (await (await t.app.request("/.well-known/jwks.json")).json()) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toEqual(["1", "2"]);
    // The slice endpoint defaults to the new active version; the decrypt-only one is signed for ended slices only.
    const past = sliceIndex(Date.now(), 3600) - 1;
    expect(((await (await t.app.request(`/v1/time-slices/${past}/public-key`)).json()) as { kid: string }).kid).toBe(
      `2:${past}`,
    );
    const old = (await (await t.app.request(`/v1/time-slices/${past}/public-key?version=1`)).json()) as {
      kid: string;
      status: string;
    };
    expect(old).toMatchObject({ kid: `1:${past}`, status: "decrypt-only" });
    const notPast = await t.app.request(`/v1/time-slices/current/public-key?version=1`);
    expect(notPast.status).toBe(400);
    expect(((await notPast.json()) as { error: { message: string } }).error.message).toContain("decrypt-only");
    await agePastRetireGrace(h.db, 1);
    await t.runtime.keys.retire(1);
    const gone = await t.app.request(`/v1/time-slices/${past}/public-key?version=1`);
    expect(gone.status).toBe(409);
    expect(((await gone.json()) as { error: { code: string } }).error.code).toBe("KEY_UNAVAILABLE");
  }, 20_000);

  test("routes are in the OpenAPI document", async () => {
    const { createApp } = await import("../../src/app.ts");
    const doc = createApp(t.runtime.appDeps()).getOpenAPI31Document({
      openapi: "3.1.0",
      info: { title: "t", version: "1" },
    });
    expect(Object.keys(doc.paths ?? {})).toEqual(
      expect.arrayContaining([
        "/.well-known/jwks.json",
        "/v1/time-slices/{slice}/public-key",
        "/v1/keys",
        "/v1/keys/rotate",
      ]),
    );
  });
});

describeEachDb("signed slice statements (v2): window, validity, precomputation, per-address limit", (h) => {
  let t: TestApp;
  const SLICE = 60;
  beforeAll(async () => {
    t = await startTestApp(h.db, { env: { SLICE_SECONDS: String(SLICE) } });
  });
  afterAll(async () => t?.close());
  const get = (slice: number | string, q = "") => t.app.request(`/v1/time-slices/${slice}/public-key${q}`);

  test("a statement carries iat/exp and status; `current` is the slice of now; only slices from 24 h back to 1 h ahead are signed", async () => {
    const before = Date.now();
    const res = await get("current");
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      slice: number;
      status: string;
      issuedAt: string;
      expiresAt: string;
      signature: string;
    };
    const cur = sliceIndex(Date.now(), SLICE);
    expect([cur, cur - 1]).toContain(body.slice);
    expect(body.status).toBe("active");
    const jwks = (await (await t.app.request("/.well-known/jwks.json")).json()) as {
      keys: { kid: string; kty: "EC"; crv: "P-256"; x: string; y: string }[];
    };
    const s = await verifySliceKey(body.signature, jwks.keys[0]!, { now: Date.now() });
    expect(s.iat).toBeGreaterThanOrEqual(before - 1);
    expect(s.exp - s.iat).toBe(3600_000);
    expect(new Date(body.expiresAt).getTime()).toBe(s.exp);
    for (const ok of [cur + 60 - 1, cur - 24 * 60 + 1]) expect((await get(ok)).status).toBe(200);
    for (const out of [cur + 62, cur - 24 * 60 - 2, 0, 2 ** 32 - 1]) {
      const r = await get(out);
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(
        /outside the slices signed now|time range|beyond/,
      );
    }
  });

  test("uncached lookups from one address are limited (429 + Retry-After); the precomputed slices around now still answer", async () => {
    const cur = sliceIndex(Date.now(), SLICE);
    await get("current");
    await Bun.sleep(200); // the statements around now are being signed ahead of time
    let limited: Response | undefined;
    for (let i = 0; i < UNCACHED_LOOKUPS_BURST + 5 && !limited; i++) {
      const r = await get(cur - 100 - i);
      if (r.status === 429) limited = r;
      else expect(r.status).toBe(200);
    }
    expect(limited?.status).toBe(429);
    expect(Number(limited!.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    expect(((await limited!.json()) as { error: { code: string } }).error.code).toBe("RATE_LIMITED");
    for (const near of [cur - 1, cur, cur + 1, cur + 2]) expect((await get(near)).status).toBe(200);
    expect((await get(cur - 100)).status).toBe(200); // already signed: a cache hit costs nothing
  });
});
