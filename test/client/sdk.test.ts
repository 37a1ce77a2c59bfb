/** SDK crypto paths with real keys: DataViewer from a grant's seeds/keys, DataSource's pinning. */
import { beforeAll, expect, test } from "bun:test";
import {
  DataSource,
  DataViewer,
  GrantMismatchError,
  OutsideGrantError,
  UntrustedKeyError,
  type Grant,
  type GrantInput,
  type SlicePublicKey,
} from "../../src/client/index.ts";
import { generateMasterKeyPair, masterScalar } from "../../src/crypto/master-key.ts";
import { SliceKeyDeriver, sliceIndex, sliceRange } from "../../src/crypto/slice-keys.ts";
import { deriveCover } from "../../src/crypto/ggm.ts";
import { encryptEnvelope } from "../../src/crypto/envelope.ts";
import { signKeyEndorsement, signSliceKey } from "../../src/crypto/sign.ts";
import { toBase64url } from "../../src/crypto/bytes.ts";
import type { EcPrivateJwk, EcPublicJwk } from "../../src/crypto/jwk.ts";

const SLICE_SECONDS = 3600;
const VERSION = 3;
let master: { publicJwk: EcPublicJwk; privateJwk: EcPrivateJwk };
let deriver: SliceKeyDeriver;
const from = 493_000,
  to = 493_005;

async function encryptAt(slice: number, text: string, ctx = "sensor:1", version = VERSION, d = deriver) {
  const key = await d.get(slice);
  const ts = sliceRange(slice, SLICE_SECONDS).startMs + 1234;
  return encryptEnvelope(text, {
    publicKey: key.publicKey,
    kid: `${version}:${slice}`,
    ts,
    ctx,
    sliceSeconds: SLICE_SECONDS,
  });
}

function grant(extra: Partial<Grant>): GrantInput {
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
  deriver = new SliceKeyDeriver({
    masterScalar: masterScalar(pair.privateJwk),
    version: VERSION,
    sliceSeconds: SLICE_SECONDS,
  });
});

test("DataViewer derives slice keys from the grant's seeds and refuses slices just outside", async () => {
  const seeds = deriveCover(deriver.rootSeed, from, to).map((n) => ({
    depth: n.depth,
    index: n.index,
    seed: toBase64url(n.seed),
  }));
  const viewer = await DataViewer.fromGrant(grant({ seeds, keys: [] }));
  for (let s = from; s <= to; s++) {
    expect(await viewer.decryptToString(await encryptAt(s, `reading ${s}`), { expectedCtx: "sensor:1" })).toBe(
      `reading ${s}`,
    );
  }
  for (const outside of [from - 1, to + 1]) {
    const jwe = await encryptAt(outside, "secret");
    expect(viewer.covers(jwe)).toBe(false);
    await expect(viewer.decrypt(jwe, { expectedCtx: "sensor:1" })).rejects.toBeInstanceOf(OutsideGrantError);
  }
});

test("DataViewer uses per-slice private JWKs, and refuses another key version and a wrong context", async () => {
  const keys = await Promise.all(
    [from, from + 1].map(async (s) => ({
      slice: s,
      kid: `${VERSION}:${s}`,
      privateJwk: (await deriver.get(s)).privateJwk,
    })),
  );
  const viewer = await DataViewer.fromGrant(grant({ keys, seeds: [], slices: { from, to: from + 1 } }));
  expect(await viewer.decryptToString(await encryptAt(from + 1, "ok"), { expectedCtx: "sensor:1" })).toBe("ok");
  await expect(viewer.decrypt(await encryptAt(from, "x"), { expectedCtx: "sensor:2" })).rejects.toThrow(
    "decryption failed",
  );
  const other = await generateMasterKeyPair();
  const otherDeriver = new SliceKeyDeriver({
    masterScalar: masterScalar(other.privateJwk),
    version: VERSION + 1,
    sliceSeconds: SLICE_SECONDS,
  });
  await expect(
    viewer.decrypt(await encryptAt(from, "x", "sensor:1", VERSION + 1, otherDeriver), { expectedCtx: "sensor:1" }),
  ).rejects.toBeInstanceOf(OutsideGrantError);
});

function fakeService(sign: (slice: number) => Promise<string>, d = deriver, version = VERSION) {
  return {
    calls: 0,
    async slicePublicKey(requested: number | "current"): Promise<SlicePublicKey> {
      this.calls++;
      const slice = requested === "current" ? sliceIndex(Date.now(), SLICE_SECONDS) : requested;
      const key = await d.get(slice);
      const r = sliceRange(slice, SLICE_SECONDS);
      const now = new Date().toISOString();
      return {
        version,
        slice,
        kid: key.kid,
        sliceSeconds: SLICE_SECONDS,
        status: "active",
        from: new Date(r.startMs).toISOString(),
        to: new Date(r.endMs).toISOString(),
        issuedAt: now,
        expiresAt: now,
        publicJwk: key.publicJwk,
        signature: await sign(slice),
      };
    },
  };
}

test("DataSource encrypts with a verified slice key that the viewer can open; caches per slice", async () => {
  const svc = fakeService(async (s) =>
    signSliceKey((await deriver.get(s)).publicJwk, master.privateJwk, { sliceSeconds: SLICE_SECONDS, iat: Date.now() }),
  );
  const source = new DataSource({ client: svc, masterKeys: [master.publicJwk] });
  const ts = sliceRange(from + 2, SLICE_SECONDS).startMs + 10;
  const a = await source.encrypt("21.5C", { ctx: "sensor:1", timestamp: ts });
  const b = await source.encrypt("21.6C", { ctx: "sensor:1", timestamp: ts + 1000 });
  expect(a.kid).toBe(`${VERSION}:${from + 2}`);
  expect(svc.calls).toBe(2); // the current slice once to learn the slice length, then the slice itself once
  const viewer = await DataViewer.fromGrant(
    grant({ keys: [{ slice: from + 2, kid: a.kid, privateJwk: (await deriver.get(from + 2)).privateJwk }], seeds: [] }),
  );
  expect(await viewer.decryptToString(b.jwe, { expectedCtx: "sensor:1" })).toBe("21.6C");
});

test("DataSource refuses a slice key signed by an unpinned key or not matching its signature", async () => {
  const rogue = await generateMasterKeyPair({ kid: String(VERSION) });
  const forged = fakeService(async (s) =>
    signSliceKey((await deriver.get(s)).publicJwk, rogue.privateJwk, { sliceSeconds: SLICE_SECONDS, iat: Date.now() }),
  );
  await expect(
    new DataSource({ client: forged, masterKeys: [master.publicJwk] }).encrypt("x", {
      ctx: "c",
      timestamp: Date.now(),
    }),
  ).rejects.toBeInstanceOf(UntrustedKeyError);
  // A correctly signed statement for another slice than the one asked for.
  const swapped = fakeService(async (s) =>
    signSliceKey((await deriver.get(s + 1)).publicJwk, master.privateJwk, {
      sliceSeconds: SLICE_SECONDS,
      iat: Date.now(),
    }),
  );
  await expect(
    new DataSource({ client: swapped, masterKeys: [master.publicJwk] }).encrypt("x", {
      ctx: "c",
      timestamp: Date.now(),
    }),
  ).rejects.toBeInstanceOf(UntrustedKeyError);
});

// ---- v2: statement validity, version monotonicity, rotation, sealed-grant binding ----------------

test("DataSource refuses an expired statement, and one that is not for the active version", async () => {
  const old = fakeService(async (s) =>
    signSliceKey((await deriver.get(s)).publicJwk, master.privateJwk, {
      sliceSeconds: SLICE_SECONDS,
      iat: Date.now() - 2 * 3600_000,
    }),
  );
  await expect(
    new DataSource({ client: old, masterKeys: [master.publicJwk] }).encrypt("x", { ctx: "c" }),
  ).rejects.toThrow(/expired/);
  const decryptOnly = fakeService(async (s) =>
    signSliceKey((await deriver.get(s)).publicJwk, master.privateJwk, {
      sliceSeconds: SLICE_SECONDS,
      iat: Date.now(),
      status: "decrypt-only",
    }),
  );
  await expect(
    new DataSource({ client: decryptOnly, masterKeys: [master.publicJwk] }).encrypt("x", { ctx: "c" }),
  ).rejects.toThrow(/decrypt-only/);
  // A cached statement is not used past its expiry either: the source asks again.
  let clock = Date.now();
  const svc = fakeService(async (s) =>
    signSliceKey((await deriver.get(s)).publicJwk, master.privateJwk, {
      sliceSeconds: SLICE_SECONDS,
      iat: clock,
      ttlMs: 10 * 60_000,
    }),
  );
  const source = new DataSource({
    client: svc,
    masterKeys: [master.publicJwk],
    now: () => clock,
    cacheTtlMs: 24 * 3600_000,
  });
  const ts = Date.now();
  await source.encrypt("a", { ctx: "c", timestamp: ts });
  const calls = svc.calls;
  clock += 9.5 * 60_000; // within a minute of exp
  await source.encrypt("b", { ctx: "c", timestamp: ts });
  expect(svc.calls).toBe(calls + 1);
});

test("DataSource follows a rotation to a newer version and then refuses statements of the older one (replay)", async () => {
  const NEW = VERSION + 1;
  const next = await generateMasterKeyPair({ kid: String(NEW) });
  const nextDeriver = new SliceKeyDeriver({
    masterScalar: masterScalar(next.privateJwk),
    version: NEW,
    sliceSeconds: SLICE_SECONDS,
  });
  let rotated = false;
  const v3 = fakeService(async (s) =>
    signSliceKey((await deriver.get(s)).publicJwk, master.privateJwk, { sliceSeconds: SLICE_SECONDS, iat: Date.now() }),
  );
  const v4 = fakeService(
    async (s) =>
      signSliceKey((await nextDeriver.get(s)).publicJwk, next.privateJwk, {
        sliceSeconds: SLICE_SECONDS,
        iat: Date.now(),
      }),
    nextDeriver,
    NEW,
  );
  let refreshed = 0;
  const network = {
    slicePublicKey: (s: number | "current") => (rotated ? v4 : v3).slicePublicKey(s),
    keyEndorsements: async () => {
      refreshed++;
      const signature = await signKeyEndorsement(
        {
          endorser: VERSION,
          version: NEW,
          jwk: next.publicJwk,
          createdAt: new Date().toISOString(),
          sliceSeconds: SLICE_SECONDS,
        },
        master.privateJwk,
      );
      return { endorsements: [{ endorser: VERSION, version: NEW, signature }] };
    },
  };
  const source = new DataSource({ client: network, masterKeys: [master.publicJwk], cacheTtlMs: 0 });
  expect((await source.encrypt("before", { ctx: "c" })).kid).toStartWith(`${VERSION}:`);
  rotated = true;
  const after = await source.encrypt("after", { ctx: "c" });
  expect(after.kid).toStartWith(`${NEW}:`);
  expect(refreshed).toBe(1);
  expect(source.highestVersion).toBe(NEW);
  // A network attacker replays fresh-looking, validly signed statements of the old version.
  rotated = false;
  await expect(source.encrypt("replayed", { ctx: "c" })).rejects.toThrow(/older than version 4/);
  // Without endorsements a rotation to an unpinned version is refused, not trusted.
  rotated = true;
  const noEndorsements = { slicePublicKey: network.slicePublicKey };
  await expect(
    new DataSource({ client: noEndorsements, masterKeys: [master.publicJwk] }).encrypt("x", { ctx: "c" }),
  ).rejects.toThrow(/neither pinned nor endorsed/);
  // A restarted source given the persisted highest version refuses the older one from the start.
  rotated = false;
  await expect(
    new DataSource({ client: network, masterKeys: [master.publicJwk], minVersion: NEW }).encrypt("x", { ctx: "c" }),
  ).rejects.toThrow(/older than version 4/);
});

async function sealedGrant(
  head: { gid: string; ver: number; slices: { from: number; to: number } },
  recipient: EcPublicJwk,
  extraHeaderJson = "",
  payload?: object,
) {
  const { CompactEncrypt, importJWK } = await import("jose");
  const keys = await Promise.all(
    [from, from + 1].map(async (s) => ({
      slice: s,
      kid: `${VERSION}:${s}`,
      privateJwk: (await deriver.get(s)).privateJwk,
    })),
  );
  const jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(payload ?? { keys, seeds: [] })))
    .setProtectedHeader({ alg: "ECDH-ES", enc: "A256GCM", typ: "chronokms-grant+jwe", cty: "json", ...head })
    .encrypt(await importJWK({ kty: "EC", crv: "P-256", x: recipient.x, y: recipient.y }, "ECDH-ES"));
  if (!extraHeaderJson) return jwe;
  // Re-encode the header with an added duplicate member (the AAD changes, so this also tests ordering).
  const parts = jwe.split(".");
  const text = new TextDecoder().decode(Buffer.from(parts[0]!, "base64url"));
  parts[0] = Buffer.from(`${text.slice(0, -1) + extraHeaderJson}}`).toString("base64url");
  return parts.join(".");
}

test("DataViewer checks a sealed grant's protected header (gid, ver, slices) against the grant, and refuses duplicate members", async () => {
  const requester = await generateMasterKeyPair();
  const slices = { from, to: from + 1 };
  const g = grant({ id: "g-1", slices });
  const ok = await DataViewer.fromGrant(
    { ...g, encrypted: await sealedGrant({ gid: "g-1", ver: VERSION, slices }, requester.publicJwk) },
    { privateKeyJwk: requester.privateJwk },
  );
  expect(await ok.decryptToString(await encryptAt(from + 1, "ok"), { expectedCtx: "sensor:1" })).toBe("ok");
  for (const [head, what] of [
    [{ gid: "g-2", ver: VERSION, slices }, /gid/],
    [{ gid: "g-1", ver: VERSION + 1, slices }, /ver/],
    [{ gid: "g-1", ver: VERSION, slices: { from, to: to } }, /slices/],
  ] as const) {
    const sealed = await sealedGrant(head, requester.publicJwk);
    await expect(
      DataViewer.fromGrant({ ...g, encrypted: sealed }, { privateKeyJwk: requester.privateJwk }),
    ).rejects.toThrow(what);
    await expect(
      DataViewer.fromGrant({ ...g, encrypted: sealed }, { privateKeyJwk: requester.privateJwk }),
    ).rejects.toBeInstanceOf(GrantMismatchError);
  }
  const dup = await sealedGrant({ gid: "g-2", ver: VERSION, slices }, requester.publicJwk, ',"gid":"g-1"');
  await expect(DataViewer.fromGrant({ ...g, encrypted: dup }, { privateKeyJwk: requester.privateJwk })).rejects.toThrow(
    /duplicate members/,
  );
});

test("DataViewer refuses a sealed payload whose keys or seeds reach outside the header's slices (anyone with the public key can seal)", async () => {
  const requester = await generateMasterKeyPair();
  const slices = { from, to: from + 1 };
  const g = grant({ id: "g-1", slices });
  const head = { gid: "g-1", ver: VERSION, slices };
  const keyOf = async (s: number, v = VERSION) => ({
    slice: s,
    kid: `${v}:${s}`,
    privateJwk: (await deriver.get(s)).privateJwk,
  });
  const wide = deriveCover(deriver.rootSeed, from - 64, from + 63).map((n) => ({
    depth: n.depth,
    index: n.index,
    seed: toBase64url(n.seed),
  }));
  for (const [payload, what] of [
    [{ keys: [await keyOf(from), await keyOf(to + 5)], seeds: [] }, /outside/],
    [{ keys: [{ ...(await keyOf(from)), kid: `${VERSION + 1}:${from}` }], seeds: [] }, /kid/],
    [{ keys: [], seeds: wide }, /outside/],
  ] as const) {
    const sealed = await sealedGrant(head, requester.publicJwk, "", payload);
    const err = await DataViewer.fromGrant({ ...g, encrypted: sealed }, { privateKeyJwk: requester.privateJwk }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GrantMismatchError);
    expect((err as Error).message).toMatch(what);
  }
});
