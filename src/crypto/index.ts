/** Public surface of the pure crypto layer (no I/O): KEK, master key, GGM tree, slice keys, envelopes, signatures. */
export {
  concatBytes,
  constantTimeEqual,
  fromBase64url,
  fromHex,
  toBase64url,
  toHex,
  utf8,
  utf8Decode,
  zeroize,
} from "./bytes.ts";
export { canonicalJson } from "./canonical-json.ts";
export {
  type DecryptEnvelopeOptions,
  type EncryptEnvelopeOptions,
  type EnvelopeHeader,
  decryptEnvelope,
  decryptEnvelopeToString,
  encryptEnvelope,
  readEnvelopeHeader,
} from "./envelope.ts";
export { type EcdhEsHeader, concatKdf, openEcdhEs, readProtectedHeader, sealEcdhEs } from "./ecdh-es.ts";
export {
  GGM_ROOT_INFO,
  GGM_ROOT_SALT,
  MAX_SLICE,
  type SeededNode,
  SubtreeWalker,
  TREE_DEPTH,
  type TreeNode,
  child,
  coverRange,
  deriveCover,
  leafFromSubtree,
  leafSeed,
  leavesInRange,
  nodeSeed,
  rootSeed,
  subtreeRange,
} from "./ggm.ts";
export {
  type EcPrivateJwk,
  type EcPublicJwk,
  importPrivateJwk,
  importPublicJwk,
  isP256PrivateJwk,
  isP256PublicJwk,
  toPublicJwk,
} from "./jwk.ts";
export { KEK_BYTES, KEK_HOWTO, generateKek, kekFingerprint, parseKek, weakKekReason } from "./kek.ts";
export { LruCache } from "./lru.ts";
export {
  type MasterKeyPair,
  generateMasterKeyPair,
  masterScalar,
  unwrapPrivateJwk,
  wrapPrivateJwk,
} from "./master-key.ts";
export {
  KEY_ENDORSEMENT_TYP,
  type KeyEndorsement,
  SLICE_KEY_TYP,
  SLICE_STATEMENT_MAX_SKEW_MS,
  SLICE_STATEMENT_TTL_MS,
  type SliceKeyStatement,
  readJwsKid,
  signKeyEndorsement,
  signPayload,
  signSliceKey,
  verifyKeyEndorsement,
  verifyPayload,
  verifySliceKey,
} from "./sign.ts";
export { assertNoDuplicateMembers } from "./strict-json.ts";
export {
  SLICE_SCALAR_DST,
  type SliceKey,
  SliceKeyDeriver,
  type SliceKeyDeriverOptions,
  parseKid,
  sliceIndex,
  sliceKeyFromLeaf,
  sliceKid,
  slicePrivateJwk,
  slicePublicJwk,
  sliceRange,
  sliceScalar,
} from "./slice-keys.ts";
export {
  KEYRING_MAC_INFO,
  KEYRING_MAC_SALT,
  type KeyringFields,
  keyringMac,
  keyringMacKey,
  publicPointOf,
  verifyKeyringMac,
} from "./keyring-mac.ts";
export { DOMAIN_KEY_BYTES, KEY_DOMAIN_SALT, TOKEN_ROOT_INFO, timesliceRoot, tokenRoot } from "./key-domains.ts";
export {
  type ParsedTokenEnvelope,
  type SealTokenOptions,
  TOKEN_CTX_LABEL,
  TOKEN_ENVELOPE_PREFIX,
  type TokenEnvelopeHeader,
  type TokenField,
  isTokenEnvelope,
  openTokenEnvelope,
  parseTokenEnvelope,
  readTokenEnvelopeHeader,
  sealTokenEnvelope,
  tokenContext,
  tokenDek,
  tokenKid,
} from "./token-envelope.ts";
