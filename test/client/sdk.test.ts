/** SDK crypto paths with real keys: DataViewer from a grant's seeds/keys, DataSource's pinning. */
import { beforeAll, expect, test } from "bun:test";
import { DataSource, DataViewer, OutsideGrantError, UntrustedKeyError, type Grant, type SlicePublicKey } from "../../src/client/index.ts";
import { generateMasterKeyPair, masterScalar } from "../../src/crypto/master-key.ts";
import { SliceKeyDeriver, sliceRange } from "../../src/crypto/slice-keys.ts";
import { deriveCover } from "../../src/crypto/ggm.ts";
import { encryptEnvelope } from "../../src/crypto/envelope.ts";
import { signSliceKey } from "../../src/crypto/sign.ts";
import { toBase64url } from "../../src/crypto/bytes.ts";
import type { EcPrivateJwk, EcPublicJwk } from "../../src/crypto/jwk.ts";

const SLICE_SECONDS = 3600;
const VERSION = 3;
let master: { publicJwk: EcPublicJwk; privateJwk: EcPrivateJwk };
let deriver: SliceKeyDeriver;
const from = 493_000, to = 493_005;

async function encryptAt(slice: number, text: string, ctx = "sensor:1", version = VERSION, d = deriver) {
  const key = await d.get(slice);
  const ts = sliceRange(slice, SLICE_SECONDS).startMs + 1234;
  return encryptEnvelope(text, { publicKey: key.publicKey, kid: `${version}:${slice}`, ts, ctx, sliceSeconds: SLICE_SECONDS });
}

function grant(extra: Partial<Grant>): Grant {
  return {
    id: "g1",
    granted: true,
    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    keyVersion: VERSION,
    sliceSeconds: SLICE_SECONDS,
    slices: { from, to },
    ...extra,
  };
}

beforeAll(async () => {
  const pair = await generateMasterKeyPair({ kid: String(VERSION) });
  master = pair;
  deriver = new SliceKeyDeriver({ masterScalar: masterScalar(pair.privateJwk), version: VERSION, sliceSeconds: SLICE_SECONDS });
});

test("DataViewer derives slice keys from the grant's seeds and refuses slices just outside", async () => {
  const seeds = deriveCover(deriver.rootSeed, from, to).map((n) => ({ depth: n.depth, index: n.index, seed: toBase64url(n.seed) }));
  const viewer = await DataViewer.fromGrant(grant({ seeds, keys: [] }));
  for (let s = from; s <= to; s++) {
    expect(await viewer.decryptToString(await encryptAt(s, `reading ${s}`), { expectedCtx: "sensor:1" })).toBe(`reading ${s}`);
  }
  for (const outside of [from - 1, to + 1]) {
    const jwe = await encryptAt(outside, "secret");
    expect(viewer.covers(jwe)).toBe(false);
    await expect(viewer.decrypt(jwe, { expectedCtx: "sensor:1" })).rejects.toBeInstanceOf(OutsideGrantError);
  }
});

test("DataViewer uses per-slice private JWKs, and refuses another key version and a wrong context", async () => {
  const keys = await Promise.all([from, from + 1].map(async (s) => ({ slice: s, kid: `${VERSION}:${s}`, privateJwk: (await deriver.get(s)).privateJwk })));
  const viewer = await DataViewer.fromGrant(grant({ keys, seeds: [], slices: { from, to: from + 1 } }));
  expect(await viewer.decryptToString(await encryptAt(from + 1, "ok"), { expectedCtx: "sensor:1" })).toBe("ok");
  await expect(viewer.decrypt(await encryptAt(from, "x"), { expectedCtx: "sensor:2" })).rejects.toThrow("decryption failed");
  const other = await generateMasterKeyPair();
  const otherDeriver = new SliceKeyDeriver({ masterScalar: masterScalar(other.privateJwk), version: VERSION + 1, sliceSeconds: SLICE_SECONDS });
  await expect(viewer.decrypt(await encryptAt(from, "x", "sensor:1", VERSION + 1, otherDeriver), { expectedCtx: "sensor:1" })).rejects.toBeInstanceOf(OutsideGrantError);
});

function fakeService(sign: (slice: number) => Promise<string>) {
  return {
    calls: 0,
    async slicePublicKey(slice: number): Promise<SlicePublicKey> {
      this.calls++;
      const key = await deriver.get(slice);
      const r = sliceRange(slice, SLICE_SECONDS);
      return { version: VERSION, slice, kid: key.kid, sliceSeconds: SLICE_SECONDS, from: new Date(r.startMs).toISOString(), to: new Date(r.endMs).toISOString(), publicJwk: key.publicJwk, signature: await sign(slice) };
    },
  };
}

test("DataSource encrypts with a verified slice key that the viewer can open; caches per slice", async () => {
  const svc = fakeService(async (s) => signSliceKey((await deriver.get(s)).publicJwk, master.privateJwk, { sliceSeconds: SLICE_SECONDS }));
  const source = new DataSource({ client: svc, masterKeys: [master.publicJwk] });
  const ts = sliceRange(from + 2, SLICE_SECONDS).startMs + 10;
  const a = await source.encrypt("21.5C", { ctx: "sensor:1", timestamp: ts });
  const b = await source.encrypt("21.6C", { ctx: "sensor:1", timestamp: ts + 1000 });
  expect(a.kid).toBe(`${VERSION}:${from + 2}`);
  expect(svc.calls).toBe(2); // slice 0 once to learn the slice length, then the slice itself once
  const viewer = await DataViewer.fromGrant(grant({ keys: [{ slice: from + 2, kid: a.kid, privateJwk: (await deriver.get(from + 2)).privateJwk }], seeds: [] }));
  expect(await viewer.decryptToString(b.jwe, { expectedCtx: "sensor:1" })).toBe("21.6C");
});

test("DataSource refuses a slice key signed by an unpinned key or not matching its signature", async () => {
  const rogue = await generateMasterKeyPair({ kid: String(VERSION) });
  const forged = fakeService(async (s) => signSliceKey((await deriver.get(s)).publicJwk, rogue.privateJwk, { sliceSeconds: SLICE_SECONDS }));
  await expect(new DataSource({ client: forged, masterKeys: [master.publicJwk] }).encrypt("x", { ctx: "c", timestamp: Date.now() })).rejects.toBeInstanceOf(UntrustedKeyError);
  // A correctly signed statement for another slice than the one asked for.
  const swapped = fakeService(async (s) => signSliceKey((await deriver.get(s + 1)).publicJwk, master.privateJwk, { sliceSeconds: SLICE_SECONDS }));
  await expect(new DataSource({ client: swapped, masterKeys: [master.publicJwk] }).encrypt("x", { ctx: "c", timestamp: Date.now() })).rejects.toBeInstanceOf(UntrustedKeyError);
});
