/**
 * Regenerates the committed known-answer vectors from the current code. Run once, review the diff:
 * a change here means every deployed slice key changed. `bun test/vectors/generate.ts`
 */
import { coverRange, deriveCover, encryptEnvelope, fromHex, leafSeed, rootSeed, sliceKeyFromLeaf, sliceScalar, toHex, GGM_ROOT_INFO, GGM_ROOT_SALT, SLICE_SCALAR_DST, toBase64url } from "../../src/crypto/index.ts";

// The P-256 private key of RFC 6979 Appendix A.2.5, reused as a well-known fixed master scalar.
const MASTER_SCALAR_HEX = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
const VERSION = 1;
const SLICES = [0, 1, 2, 2 ** 31, 2 ** 32 - 1, 493000];

const master = fromHex(MASTER_SCALAR_HEX);
const root = rootSeed(master);
const slices = [];
for (const slice of SLICES) {
  const leaf = leafSeed(root, slice);
  const key = await sliceKeyFromLeaf(leaf, slice, VERSION);
  slices.push({ slice, kid: key.kid, leafSeedHex: toHex(leaf), scalarHex: toHex(sliceScalar(leaf)), x: key.publicJwk.x, y: key.publicJwk.y });
}
const cover = { from: 492999, to: 493064, nodes: deriveCover(root, 492999, 493064).map((n) => ({ depth: n.depth, index: n.index, seedHex: toHex(n.seed) })) };
if (cover.nodes.length !== coverRange(cover.from, cover.to).length) throw new Error("cover mismatch");

const sliceDerivation = {
  description: "chronokms slice key derivation (SPEC §4): root = HKDF-SHA256(ikm=master scalar, salt, info, L=32) [RFC 5869]; child_b = HMAC-SHA256(key=seed, msg=[b]) with bits of the slice from the most significant, depth 32; scalar = RFC 9380 hash_to_field(leaf, count=1, p=n, m=1, k=128, expand_message_xmd SHA-256, DST); public key = scalar·G on P-256.",
  masterScalarHex: MASTER_SCALAR_HEX,
  masterScalarSource: "RFC 6979 Appendix A.2.5 private key x",
  version: VERSION,
  hkdfSalt: GGM_ROOT_SALT,
  hkdfInfo: GGM_ROOT_INFO,
  scalarDst: SLICE_SCALAR_DST,
  rootSeedHex: toHex(root),
  slices,
  cover,
};
await Bun.write(new URL("./slice-derivation.json", import.meta.url), JSON.stringify(sliceDerivation, null, 2) + "\n");

// RFC 7518 Appendix C: the ECDH-ES Concat KDF worked example (Alice = ephemeral sender, Bob = recipient).
const bob = { kty: "EC", crv: "P-256", x: "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ", y: "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck", d: "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw" } as const;
const alice = { kty: "EC", crv: "P-256", x: "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0", y: "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps", d: "0_NxaRPUMQoAJt50Gz8YiTr8gRTwyEaCumd-MToTmIo" } as const;
const envelope = { kid: "1:493000", ts: 493000 * 3600 * 1000 + 42, ctx: "oauth:github:user-42:access", plaintext: "gho_16C7e42F292c6912E7710c838347Ae178B4a" };
const jwe = await encryptEnvelope(envelope.plaintext, { publicKey: { kty: "EC", crv: "P-256", x: bob.x, y: bob.y }, kid: envelope.kid, ts: envelope.ts, ctx: envelope.ctx });
const rfc = {
  source: "RFC 7518 Appendix C (Example ECDH-ES Key Agreement Computation)",
  alice,
  bob,
  header: { alg: "ECDH-ES", enc: "A128GCM", apu: "QWxpY2U", apv: "Qm9i" },
  zBytes: [158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196],
  keydatalen: 128,
  derivedKey: "VqqN6vgjbSBcIijNcacQGg",
  envelope: { ...envelope, description: "A chronokms envelope (ECDH-ES + A256GCM, our header) to Bob's RFC 7518 Appendix C key, made once by encryptEnvelope", jwe },
};
await Bun.write(new URL("./ecdh-es-rfc7518.json", import.meta.url), JSON.stringify(rfc, null, 2) + "\n");
console.log("wrote slice-derivation.json and ecdh-es-rfc7518.json", toBase64url(root).length);
