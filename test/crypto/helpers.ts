// Test-only re-exports: the public crypto surface plus a few internals the tests poke at.
export * from "../../src/crypto/index.ts";
export { bytesToBigInt as bytesToBigIntForTest } from "../../src/crypto/bytes.ts";
