/** A network attacker against DataSource's rotation following (the JWKS is unsigned). */
import { expect, test } from "bun:test";
import { DataSource, UntrustedKeyError, type SlicePublicKey } from "../../src/client/index.ts";
import { generateMasterKeyPair, masterScalar } from "../../src/crypto/master-key.ts";
import { SliceKeyDeriver, sliceIndex, sliceRange } from "../../src/crypto/slice-keys.ts";
import { signKeyEndorsement, signSliceKey } from "../../src/crypto/sign.ts";
import { ChronoKmsClient } from "../../src/client/api.ts";
import { startTestApp } from "../support/app.ts";
import { describeEachDb } from "../support/databases.ts";

const SLICE_SECONDS = 3600;

async function version(v: number) {
  const pair = await generateMasterKeyPair({ kid: String(v) });
  const deriver = new SliceKeyDeriver({
    masterScalar: masterScalar(pair.privateJwk),
    version: v,
    sliceSeconds: SLICE_SECONDS,
  });
  return { v, pair, deriver };
}
type V = Awaited<ReturnType<typeof version>>;

async function statement(k: V, requested: number | "current"): Promise<SlicePublicKey> {
  const slice = requested === "current" ? sliceIndex(Date.now(), SLICE_SECONDS) : requested;
  const key = await k.deriver.get(slice);
  const r = sliceRange(slice, SLICE_SECONDS);
  const now = new Date().toISOString();
  const signature = await signSliceKey(key.publicJwk, k.pair.privateJwk, {
    sliceSeconds: SLICE_SECONDS,
    iat: Date.now(),
  });
  return {
    version: k.v,
    slice,
    kid: key.kid,
    sliceSeconds: SLICE_SECONDS,
    status: "active",
    from: new Date(r.startMs).toISOString(),
    to: new Date(r.endMs).toISOString(),
    issuedAt: now,
    expiresAt: now,
    publicJwk: key.publicJwk,
    signature,
  };
}

test("a forged kid plus the attacker's key in the (unsigned) JWKS neither redirects encryption nor bricks the source", async () => {
  const genuine = await version(3);
  const attacker = await version(999999999);
  let attack = true;
  let jwksFetches = 0;
  const network = {
    slicePublicKey: (s: number | "current") => statement(attack ? attacker : genuine, s),
    jwks: async () => {
      jwksFetches++;
      return { keys: [genuine.pair.publicJwk, attacker.pair.publicJwk] };
    },
    keyEndorsements: async () => {
      jwksFetches++;
      // The attacker's own "endorsements": by the pinned version's number but signed with their key, and by their own version.
      const jwk = attacker.pair.publicJwk;
      const body = { version: 999999999, jwk, createdAt: new Date().toISOString(), sliceSeconds: SLICE_SECONDS };
      return {
        endorsements: [
          {
            endorser: 3,
            version: 999999999,
            signature: await signKeyEndorsement({ endorser: 3, ...body }, attacker.pair.privateJwk),
          },
          {
            endorser: 999999998,
            version: 999999999,
            signature: await signKeyEndorsement({ endorser: 999999998, ...body }, attacker.pair.privateJwk),
          },
        ],
      };
    },
  };
  let clock = Date.now();
  const source = new DataSource({
    client: network,
    masterKeys: [genuine.pair.publicJwk],
    cacheTtlMs: 0,
    now: () => clock,
  });
  for (let i = 0; i < 5; i++)
    await expect(source.encrypt("secret", { ctx: "c" })).rejects.toBeInstanceOf(UntrustedKeyError);
  expect(source.highestVersion).toBe(0);
  // One refresh attempt for the burst of forged statements, not one per encrypt.
  expect(jwksFetches).toBe(1);
  clock += 60_000;
  await expect(source.encrypt("secret", { ctx: "c" })).rejects.toThrow(/neither pinned nor endorsed/);
  expect(jwksFetches).toBe(2);
  // The genuine service is still usable afterwards.
  attack = false;
  const rec = await source.encrypt("ok", { ctx: "c" });
  expect(rec.kid).toStartWith("3:");
  expect(source.highestVersion).toBe(3);
});

test("pinning two different keys under one kid is refused", async () => {
  const a = await version(3);
  const b = await version(3);
  expect(
    () =>
      new DataSource({
        client: { slicePublicKey: (s) => statement(a, s) },
        masterKeys: [a.pair.publicJwk, b.pair.publicJwk],
      }),
  ).toThrow(/two different master keys/);
});

describeEachDb("DataSource follows real rotations only through the service's endorsements", (h) => {
  test("pinned v1 → v3 through the endorsement chain over HTTP; the JWKS is never consulted", async () => {
    const t = await startTestApp(h.db, { listen: true, env: { SLICE_SECONDS: "3600" } });
    try {
      const client = new ChronoKmsClient({ baseUrl: t.url });
      const v1 = (await client.jwks()).keys.find((k) => k.kid === "1")!;
      const source = new DataSource({ client, masterKeys: [v1] });
      expect((await source.encrypt("a", { ctx: "c" })).kid).toStartWith("1:");
      await t.runtime.keys.rotate();
      await t.runtime.keys.rotate();
      const { endorsements } = await client.keyEndorsements();
      expect(endorsements.map((e) => `${e.endorser}>${e.version}`).sort()).toEqual(["1>2", "1>3", "2>3"]);
      // A fresh source pinned at v1 reaches v3 (the cached one switches once its cache expires).
      const fresh = new DataSource({ client, masterKeys: [v1] });
      expect((await fresh.encrypt("b", { ctx: "c" })).kid).toStartWith("3:");
      expect(fresh.highestVersion).toBe(3);
      const res = await fetch(`${t.url}/v1/keys/endorsements`);
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toContain("public");
    } finally {
      await t.close();
    }
  }, 30_000);
});

test("a device whose clock is set back is not fed a statement from a lifetime before the newest one it saw", async () => {
  const k = await version(3);
  const T1 = Date.now();
  let serveIat = T1;
  let clock = T1;
  const sign = async (s: number | "current") => {
    const st = await statement(k, s);
    const key = await k.deriver.get(st.slice);
    return {
      ...st,
      signature: await signSliceKey(key.publicJwk, k.pair.privateJwk, { sliceSeconds: SLICE_SECONDS, iat: serveIat }),
    };
  };
  const source = new DataSource({
    client: { slicePublicKey: sign },
    masterKeys: [k.pair.publicJwk],
    cacheTtlMs: 0,
    now: () => clock,
  });
  await source.encrypt("fresh", { ctx: "c", timestamp: T1 });
  // The clock is reset two hours back, and the attacker replays a statement signed back then (unexpired by that clock).
  clock = T1 - 2 * 3600_000;
  serveIat = clock + 60_000;
  await expect(source.encrypt("x", { ctx: "c", timestamp: T1 + 2 * 3600_000 })).rejects.toThrow(/replayed statement/);
});
