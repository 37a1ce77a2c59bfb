/**
 * Verified principals, reused briefly so the hot path stays off the database. Keyed by the full
 * secret hash, so a different secret for the same keyId can never hit. Every invalidation bumps a
 * generation: a verification caches its result only if none happened while its query was in
 * flight, so a key revoked meanwhile is never put back.
 */
import type { Principal } from "./principal.ts";

const CACHE_MAX = 10_000;

interface CachedPrincipal {
  principal: Principal;
  requesterUuid: string;
  keyExpiresAt: number | null;
  cachedUntil: number;
}

export class PrincipalCache {
  readonly #entries = new Map<string, CachedPrincipal>();
  #generation = 0;

  generation(): number {
    return this.#generation;
  }

  get(keyId: string, hash: string, now: number): Principal | null {
    const k = cacheKey(keyId, hash);
    const hit = this.#entries.get(k);
    if (!hit) return null;
    if (hit.cachedUntil <= now || (hit.keyExpiresAt !== null && hit.keyExpiresAt <= now)) {
      this.#entries.delete(k);
      return null;
    }
    return hit.principal;
  }

  /** Remembers `entry` unless an invalidation happened since `generation` was read. */
  remember(generation: number, hash: string, entry: CachedPrincipal): void {
    if (generation !== this.#generation) return;
    const key = cacheKey(entry.principal.keyId, hash);
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    if (this.#entries.size > CACHE_MAX) this.#entries.delete(this.#entries.keys().next().value as string);
  }

  dropKey(keyId: string): void {
    this.#generation++;
    for (const [k, v] of this.#entries) if (v.principal.keyId === keyId) this.#entries.delete(k);
  }

  dropRequester(requesterUuid: string): void {
    this.#generation++;
    for (const [k, v] of this.#entries) if (v.requesterUuid === requesterUuid) this.#entries.delete(k);
  }

  dropAll(): void {
    this.#generation++;
    this.#entries.clear();
  }
}

function cacheKey(keyId: string, hash: string): string {
  return `${keyId}:${hash}`;
}
