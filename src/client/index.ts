/**
 * chronokms client SDK (`chronokms/client`): the typed API client, DataSource (encrypt with
 * public keys only) and DataViewer (decrypt with a grant). Runs on Bun, Node and in browsers
 * (WebCrypto only); it depends on the pure crypto layer only, never on the server's code. Every
 * error class it throws is exported here (test/client/bundle.test.ts checks both).
 */
export { ChronoKmsClient, type ClientOptions } from "./api.ts";
export { DataSource, type DataSourceOptions, type EncryptedRecord } from "./data-source.ts";
export { DataViewer, type GrantInput, type GrantKeys } from "./data-viewer.ts";
export {
  AccessDeniedError,
  ChronoKmsError,
  GrantMismatchError,
  LocalRefusalError,
  OutsideGrantError,
  UntrustedKeyError,
} from "./errors.ts";
export {
  CryptoError,
  CryptoInputError,
  DecryptionFailedError,
  SignatureVerificationError,
} from "../crypto/errors.ts";
export type * from "./types.ts";
export type { EcPrivateJwk, EcPublicJwk } from "../crypto/jwk.ts";
