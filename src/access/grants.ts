/**
 * Time-slice grants: which slices of the active key version a range covers, and — only once the
 * decision is durable — the grant body around the key material that src/keys/grant-material.ts
 * issues (the minimal GGM subtree seeds covering those slices, the per-slice private JWKs when
 * there are at most 64), optionally sealed to the requester's registered public key with the
 * ECDH-ES + A256GCM sealer of src/crypto/ecdh-es.ts (the SDK opens it with the same module).
 */
import { sealEcdhEs } from "../crypto/ecdh-es.ts";
import { sliceIndex, sliceRange } from "../crypto/slice-keys.ts";
import { KeyUnavailableError, ValidationError } from "../errors.ts";
import {
  type GrantKey,
  type GrantMaterial,
  type GrantSeed,
  assertIssuable,
  grantMaterial,
  grantSeedCount,
} from "../keys/grant-material.ts";
import type { KeyService, KeyVersion } from "../keys/types.ts";

export type { GrantKey, GrantSeed };

/** Per-slice private JWKs are included up to this many slices; beyond, seeds only. */
export const MAX_GRANT_SLICE_KEYS = 64;
/**
 * Advisory lifetime of a grant (1 h): clients should discard the material afterwards. Released
 * key material cannot be recalled, so this is a statement of intent, not an enforcement.
 */
export const GRANT_TTL_MS = 60 * 60 * 1000;
/** `typ` of a sealed grant; its payload is `{ keys, seeds }` as JSON. */
export const GRANT_JWE_TYP = "chronokms-grant+jwe";

export interface GrantPlan {
  version: KeyVersion;
  from: number;
  to: number;
  /** Slice keys the grant opens (to − from + 1), recorded as keyCount. */
  keyCount: number;
  /** Subtree seeds the grant will carry. */
  seedCount: number;
  /**
   * The exact data time the material opens, epoch ms, both ends inclusive: from the first
   * millisecond of slice `from` to the last of slice `to`. This, not the requested range, is
   * what the policies judge.
   */
  covered: { start: number; end: number };
}

/** A request that names a version no grant can come from: decided (and audited) as a denial. */
export interface UnavailableVersion {
  unavailable: string;
}

export interface GrantBody {
  id: string;
  granted: true;
  expiresAt: string;
  keyVersion: number;
  sliceSeconds: number;
  slices: { from: number; to: number };
  /** The data time the material opens (whole slices), ISO-8601, both ends inclusive. */
  covered: { start: string; end: string };
  keys?: GrantKey[];
  seeds?: GrantSeed[];
  /** Present instead of keys/seeds when the requester registered a public key. */
  encrypted?: string;
}

/** No key material: safe to compute before the decision. Rejects ValidationError beyond slice 2^32−1. */
/** The most slices one grant may open: what access_requests.keyCount (int4) can record. */
export const MAX_KEY_COUNT = 2 ** 31 - 1;

export async function planGrant(
  keys: KeyService,
  range: { start: number; end: number },
  keyVersion?: number,
): Promise<GrantPlan> {
  // An older version is still usable while decrypt-only; get() refuses unknown and retired ones.
  const version = keyVersion === undefined ? await keys.active() : await keys.get(keyVersion);
  const from = sliceIndex(range.start, version.sliceSeconds);
  const to = sliceIndex(range.end, version.sliceSeconds);
  // access_requests.keyCount is an int4: a range it cannot record is bad input (400), refused
  // before any decision — reachable only with very short slices and a policy admitting decades.
  if (to - from + 1 > MAX_KEY_COUNT) {
    throw new ValidationError(
      `the time range opens ${to - from + 1} slices of ${version.sliceSeconds} s; at most ${MAX_KEY_COUNT} per grant`,
    );
  }
  const covered = {
    start: sliceRange(from, version.sliceSeconds).startMs,
    end: sliceRange(to, version.sliceSeconds).endMs - 1,
  };
  return { version, from, to, keyCount: to - from + 1, seedCount: grantSeedCount(from, to), covered };
}

/**
 * `planGrant`, except that an unknown or retired `keyVersion` is a value, not an exception: the
 * caller decides it like any request (admission first, then a KEY_UNAVAILABLE denial), so a
 * requester no whitelist admits cannot probe which versions exist, and every attempt is audited.
 */
export async function planOrUnavailable(
  keys: KeyService,
  range: { start: number; end: number },
  keyVersion?: number,
): Promise<GrantPlan | UnavailableVersion> {
  try {
    return await planGrant(keys, range, keyVersion);
  } catch (err) {
    if (keyVersion !== undefined && err instanceof KeyUnavailableError) {
      return { unavailable: `key version ${keyVersion} is not available for grants (unknown or retired)` };
    }
    throw err;
  }
}

/** A plan with its key material derived, not yet released. */
export interface PreparedGrant {
  plan: GrantPlan;
  material: GrantMaterial;
}

/**
 * Derives the plan's key material on a later event-loop turn (setImmediate: by then the decision's
 * audit statement, started just before, is on its way to the database, so the derivation overlaps
 * the commit instead of delaying it). Deriving releases nothing; `issueGrant` does, after the
 * decision is durable. Never rejects unobserved: a failure surfaces where it is awaited.
 */
export function prepareGrant(plan: GrantPlan): Promise<PreparedGrant> {
  const range = { from: plan.from, to: plan.to };
  const prepared = new Promise<GrantMaterial>((resolve, reject) =>
    setImmediate(() =>
      grantMaterial(plan.version, range, { maxSliceKeys: MAX_GRANT_SLICE_KEYS }).then(resolve, reject),
    ),
  ).then((material) => ({ plan, material }));
  prepared.catch(() => {});
  return prepared;
}

/** Call only after the decision row is durable: shapes (and seals) the prepared material. */
export async function issueGrant(
  prepared: PreparedGrant,
  opts: { id: string; now: number; publicKeyJwk: JsonWebKey | null },
): Promise<GrantBody> {
  const { plan, material } = prepared;
  const { version, from, to } = plan;
  // Retired while the decision committed: what was derived before stays here.
  assertIssuable(version);
  const { keys, seeds } = material;
  const head = {
    id: opts.id,
    granted: true as const,
    expiresAt: new Date(opts.now + GRANT_TTL_MS).toISOString(),
    keyVersion: version.version,
    sliceSeconds: version.sliceSeconds,
    slices: { from, to },
    covered: { start: new Date(plan.covered.start).toISOString(), end: new Date(plan.covered.end).toISOString() },
  };
  if (!opts.publicKeyJwk) return { ...head, keys, seeds };
  return { ...head, encrypted: await sealGrant({ keys, seeds }, opts.publicKeyJwk, head) };
}

/**
 * Compact JWE, ECDH-ES (direct key agreement, RFC 7518 §4.6) + A256GCM, to the requester's P-256
 * key. The protected header (the AAD) names the grant, version and slice range, so a sealed
 * payload cannot be passed off as another grant's.
 */
async function sealGrant(
  payload: { keys: GrantKey[]; seeds: GrantSeed[] },
  publicKeyJwk: JsonWebKey,
  head: { id: string; keyVersion: number; slices: { from: number; to: number } },
): Promise<string> {
  const recipient = { kty: "EC" as const, crv: "P-256" as const, x: publicKeyJwk.x ?? "", y: publicKeyJwk.y ?? "" };
  const kid = (publicKeyJwk as { kid?: unknown }).kid;
  return sealEcdhEs(JSON.stringify(payload), recipient, {
    typ: GRANT_JWE_TYP,
    cty: "json",
    ...(typeof kid === "string" ? { kid } : {}),
    gid: head.id,
    ver: head.keyVersion,
    slices: head.slices,
  });
}
