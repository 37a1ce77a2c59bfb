/**
 * Crypto micro-benchmarks: slice key derivation (uncached and cached), envelope encrypt/decrypt, the
 * v2 token envelope seal/open (what a token write/read pays per field), jose's
 * decrypt for comparison, and the raw WebCrypto baseline. `bun bench/crypto.ts`; `runCryptoBench()` for `bun run bench`.
 */
import { compactDecrypt } from "jose";
import {
  SliceKeyDeriver,
  decryptEnvelope,
  encryptEnvelope,
  generateMasterKeyPair,
  masterScalar,
  openTokenEnvelope,
  sealTokenEnvelope,
  sliceKid,
  tokenContext,
  tokenRoot,
} from "../src/crypto/index.ts";

export interface BenchResult {
  opsPerSec: number;
  usPerOp: number;
}

async function measure(
  fn: (i: number) => Promise<unknown> | unknown,
  minMs = 400,
  minIters = 200,
): Promise<BenchResult> {
  for (let i = 0; i < 50; i++) await fn(i); // warm-up (JIT, precomputed tables)
  let iters = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < minMs || iters < minIters) {
    await fn(iters);
    iters++;
    elapsed = performance.now() - start;
  }
  const usPerOp = (elapsed * 1000) / iters;
  return { opsPerSec: Math.round(1e6 / usPerOp), usPerOp: Math.round(usPerOp * 10) / 10 };
}

export async function runCryptoBench(): Promise<Record<string, BenchResult>> {
  const { privateJwk } = await generateMasterKeyPair();
  const scalar = masterScalar(privateJwk);
  const version = 1;
  const sliceSeconds = 3600;
  const results: Record<string, BenchResult> = {};

  // (a) uncached: a fresh deriver with a tiny cache, new slice every op (root → leaf → scalar → JWKs → CryptoKeys).
  const cold = new SliceKeyDeriver({ masterScalar: scalar, version, sliceSeconds, cacheSize: 1 });
  let next = 1_000_000;
  results["sliceKey.derive (uncached)"] = await measure(() => cold.get(next++));
  // 64 consecutive slices through the shared tree walk, per slice.
  const grant = new SliceKeyDeriver({ masterScalar: scalar, version, sliceSeconds, cacheSize: 64 });
  let base = 2_000_000;
  const r64 = await measure(
    async () => {
      await grant.range(base, base + 63);
      base += 64;
    },
    400,
    20,
  );
  results["sliceKey.range64 (uncached, per slice)"] = {
    opsPerSec: r64.opsPerSec * 64,
    usPerOp: Math.round((r64.usPerOp / 64) * 10) / 10,
  };

  // (b) cached lookup.
  const warm = new SliceKeyDeriver({ masterScalar: scalar, version, sliceSeconds });
  await warm.get(493_000);
  results["sliceKey.get (cached)"] = await measure(() => warm.get(493_000), 300, 10_000);

  const key = await warm.get(493_000);
  const ts = 493_000 * sliceSeconds * 1000 + 1234;
  const ctx = "oauth:github:user-42:access";
  const token = "gho_16C7e42F292c6912E7710c838347Ae178B4a";
  // (c) and (d)
  results["envelope.encrypt"] = await measure(() =>
    encryptEnvelope(token, { publicKey: key.publicKey, kid: key.kid, ts, ctx }),
  );
  const jwe = await encryptEnvelope(token, { publicKey: key.publicKey, kid: sliceKid(version, 493_000), ts, ctx });
  results["envelope.decrypt"] = await measure(() =>
    decryptEnvelope(jwe, { privateKey: key.privateKey, expectedCtx: ctx }),
  );
  results["jose.compactDecrypt (reference)"] = await measure(() => compactDecrypt(jwe, key.privateKey));

  // (c') the token envelope (src/crypto/token-envelope.ts): HKDF-SHA256 + AES-256-GCM per field, no ECDH.
  const troot = tokenRoot(scalar);
  const tctx = tokenContext("github", "user-42", "access", 1);
  results["tokenEnvelope.seal"] = await measure(
    () => sealTokenEnvelope(token, { root: troot, version, ctx: tctx }),
    300,
    10_000,
  );
  const tjwe = sealTokenEnvelope(token, { root: troot, version, ctx: tctx });
  results["tokenEnvelope.open"] = await measure(
    () => openTokenEnvelope(tjwe, { root: troot, version, expectedCtx: tctx }),
    300,
    10_000,
  );

  // (e) raw baseline: ECDH deriveBits with an already imported peer key + AES-256-GCM decrypt with an imported key.
  const eph = (await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, [
    "deriveBits",
  ])) as CryptoKeyPair;
  const aes = await crypto.subtle.importKey("raw", crypto.getRandomValues(new Uint8Array(32)), "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, aes, new TextEncoder().encode(token));
  results["raw ECDH+AES-GCM decrypt (baseline)"] = await measure(async () => {
    await crypto.subtle.deriveBits({ name: "ECDH", public: eph.publicKey }, key.privateKey, 256);
    await crypto.subtle.decrypt({ name: "AES-GCM", iv }, aes, sealed);
  });
  // (e') the same, also paying the two key imports any ECDH-ES decryption must do (peer point, AES key).
  const ephRaw = new Uint8Array(await crypto.subtle.exportKey("raw", eph.publicKey));
  const aesRaw = crypto.getRandomValues(new Uint8Array(32));
  results["raw ECDH+AES-GCM decrypt incl. imports"] = await measure(async () => {
    const pub = await crypto.subtle.importKey("raw", ephRaw, { name: "ECDH", namedCurve: "P-256" }, false, []);
    await crypto.subtle.deriveBits({ name: "ECDH", public: pub }, key.privateKey, 256);
    const k = await crypto.subtle.importKey("raw", aesRaw, "AES-GCM", false, ["decrypt"]);
    await crypto.subtle.decrypt({ name: "AES-GCM", iv }, k, sealed).catch(() => undefined);
  });
  return results;
}

if (import.meta.main) {
  const r = await runCryptoBench();
  const rows = Object.entries(r).map(
    ([name, v]) => `${name.padEnd(42)} ${String(v.usPerOp).padStart(9)} µs/op ${String(v.opsPerSec).padStart(9)} ops/s`,
  );
  console.log(rows.join("\n"));
  const ratio = (a: string, b: string) => (r[a]!.usPerOp / r[b]!.usPerOp).toFixed(2);
  console.log(
    `\nenvelope.decrypt / raw baseline            ${ratio("envelope.decrypt", "raw ECDH+AES-GCM decrypt (baseline)")}x`,
  );
  console.log(
    `envelope.decrypt / raw incl. imports       ${ratio("envelope.decrypt", "raw ECDH+AES-GCM decrypt incl. imports")}x`,
  );
  console.log(
    `jose decrypt / raw baseline                ${ratio("jose.compactDecrypt (reference)", "raw ECDH+AES-GCM decrypt (baseline)")}x`,
  );
}
