/**
 * A failed BoringSSL operation leaves its error on the thread, and Bun's keyed CryptoHasher (HMAC)
 * threw that stale error at its next, unrelated use. A requester registered with an off-curve
 * publicKeyJwk (refused with a 400, as it should be) thereby made the next time-slice grant fail
 * in its GGM derivation. Found when the full suite ran the requesters test before a grant test.
 */
import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { importPublicJwk } from "../../src/crypto/jwk.ts";
import { SliceKeyDeriver } from "../../src/crypto/slice-keys.ts";
import { childNative } from "../../src/crypto/slice-keys-native.ts";
import { grantMaterial } from "../../src/keys/grant-material.ts";
import type { KeyVersion } from "../../src/keys/types.ts";

const offCurve = { kty: "EC", crv: "P-256", x: "A".repeat(43), y: "A".repeat(43) } as const;

async function failAnImport(): Promise<void> {
  await expect(importPublicJwk(offCurve as never, "ECDH")).rejects.toThrow();
}

test("a refused off-curve key does not break the next GGM step or grant derivation", async () => {
  await failAnImport();
  expect(childNative(new Uint8Array(32), 1)).toHaveLength(32);
  const deriver = new SliceKeyDeriver({ version: 1, sliceSeconds: 60, masterScalar: randomBytes(32) });
  const version = { version: 1, sliceSeconds: 60, deriver } as unknown as KeyVersion;
  await failAnImport();
  const m = await grantMaterial(version, { from: 1000, to: 1060 }, { maxSliceKeys: 64 });
  expect(m.keys).toHaveLength(61);
});
