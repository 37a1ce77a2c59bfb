/**
 * The loaded keyring: reads (or, on an empty table, creates) the master key versions, checks every
 * row against the KEK, keeps the private halves in memory only (GGM roots, non-extractable signing
 * keys, token roots) and notices other processes' rotations within ~1 s through a cheap stamp query.
 */
import {
  type EcPublicJwk,
  SliceKeyDeriver,
  generateMasterKeyPair,
  importPrivateJwk,
  keyringMacKey,
  masterScalar,
  tokenRoot,
  unwrapPrivateJwk,
  wrapPrivateJwk,
  zeroize,
} from "../crypto/index.ts";
import type { Database } from "../db/database.ts";
import { DecryptionFailedError, KekMismatchError, KeyUnavailableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { MasterKeyRepository, checkPublicMatches, checkRow, type MasterKeyRow } from "./repository.ts";
import type { KeyVersion } from "./types.ts";

export interface Loaded {
  row: MasterKeyRow;
  /** Present unless retired. */
  kv?: KeyVersion;
  signer?: CryptoKey;
  /** The token domain root (never released; kept apart from `kv`, which grants see). Present unless retired. */
  tokenRoot?: Uint8Array;
}

interface State {
  stamp: string;
  byVersion: Map<number, Loaded>;
  active: Loaded | undefined;
}

const EMPTY: State = { stamp: "", byVersion: new Map(), active: undefined };

/** The public JWK as published in the JWKS: kid = version, ES256 signing key. */
export function signingJwk(jwk: EcPublicJwk, version: number): EcPublicJwk {
  return { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, kid: String(version), alg: "ES256", use: "sig" };
}

export class LiveKeyring {
  readonly repo: MasterKeyRepository;
  readonly macKey: Uint8Array;
  private state: State = EMPTY;
  private lastCheck = -Infinity;
  private forcedReload: { startedAt: number; done: Promise<void> } | undefined;
  private inflight: Promise<void> | undefined;
  private refreshError: unknown;

  constructor(
    private readonly o: {
      db: Database;
      kek: Uint8Array;
      kekId: string;
      sliceSeconds: number;
      log: Logger;
      refreshIntervalMs: number;
    },
  ) {
    this.macKey = keyringMacKey(o.kek);
    this.repo = new MasterKeyRepository(o.db, this.macKey);
  }

  get kekId(): string {
    return this.o.kekId;
  }

  /** Wraps a new version's private JWK under the KEK. */
  wrap(privateJwk: Parameters<typeof wrapPrivateJwk>[0], version: number): Promise<string> {
    return wrapPrivateJwk(privateJwk, this.o.kek, { version });
  }

  /** Loads every version; returns the row of version 1 when this call created it. */
  async load(): Promise<MasterKeyRow | null> {
    let rows = await this.repo.list();
    let created: MasterKeyRow | null = null;
    if (rows.length === 0) {
      created = await this.generateFirst();
      rows = await this.repo.list();
    } else if (rows.every((r) => r.keyringMac === null)) {
      await this.macLegacyRows();
      rows = await this.repo.list();
    }
    // A KekMismatchError here stops the process: nothing may run with keys it cannot unwrap.
    this.state = await this.build(rows, await this.repo.stamp());
    this.lastCheck = performance.now();
    return created;
  }

  /** Version 1 under the lock; a process that loses the race finds the winner's row and creates nothing. */
  private async generateFirst(): Promise<MasterKeyRow | null> {
    const pair = await generateMasterKeyPair({ kid: "1" });
    const jwe = await this.wrap(pair.privateJwk, 1);
    pair.privateJwk.d = "";
    return this.repo.locked(async (tx) => {
      if ((await this.repo.count(tx)) > 0) return null;
      return this.repo.insert(tx, {
        version: 1,
        publicJwk: signingJwk(pair.publicJwk, 1),
        privateKeyJwe: jwe,
        kekId: this.o.kekId,
        sliceSeconds: this.o.sliceSeconds,
        status: "active",
      });
    });
  }

  /**
   * Upgrade in place, once: rows written before keyring MACs existed get theirs, but only when no
   * row of the table has a MAC yet (the first start after the migration) and only after the row's
   * private JWE unwraps under the configured KEK (which only a KEK holder can produce) and its
   * stored public key is that private key's. Afterwards a row without a MAC is refused like a bad one.
   */
  private async macLegacyRows(): Promise<void> {
    await this.repo.locked(async (tx) => {
      const rows = await this.repo.list(tx);
      if (rows.some((r) => r.keyringMac !== null)) return; // another process did it
      for (const row of rows) {
        const jwk = await this.unwrapJwk(row);
        try {
          await checkPublicMatches(row, jwk);
        } finally {
          jwk.d = "";
        }
        await this.repo.setMac(tx, row);
      }
      this.o.log.info("keyring MACs written for master key rows made before they existed", {
        versions: rows.map((r) => r.version),
      });
    });
  }

  private async build(rows: MasterKeyRow[], stamp: string): Promise<State> {
    const byVersion = new Map<number, Loaded>();
    let active: Loaded | undefined;
    for (const row of rows) {
      // Every row, retired ones too: a forged row must not verify a signature anywhere. A row
      // under another KEK is that problem first (its MAC is under that KEK's key).
      if (row.kekId !== this.o.kekId) throw this.kekMismatch(row, "was wrapped with a different KEK");
      await checkRow(this.macKey, row);
      const prev = this.state.byVersion.get(row.version);
      let loaded: Loaded;
      if (row.status === "retired") {
        loaded = { row };
      } else if (prev?.kv) {
        loaded = { row, kv: { ...prev.kv, status: row.status }, signer: prev.signer!, tokenRoot: prev.tokenRoot! };
      } else {
        loaded = { row, ...(await this.unwrap(row)) };
      }
      byVersion.set(row.version, loaded);
      if (row.status === "active") active = loaded;
    }
    // Drop key material of versions retired (or gone) since the last load.
    for (const [v, prev] of this.state.byVersion) if (prev.kv && !byVersion.get(v)?.kv) destroy(prev);
    return { stamp, byVersion, active };
  }

  private async unwrap(row: MasterKeyRow): Promise<{ kv: KeyVersion; signer: CryptoKey; tokenRoot: Uint8Array }> {
    const jwk = await this.unwrapJwk(row);
    try {
      // The JWKS serves row.publicJwk: it must be this private key's, or nothing of it is used.
      await checkPublicMatches(row, jwk);
    } catch (e) {
      jwk.d = "";
      throw e;
    }
    const scalar = masterScalar(jwk);
    try {
      const deriver = new SliceKeyDeriver({
        masterScalar: scalar,
        version: row.version,
        sliceSeconds: row.sliceSeconds,
      });
      const signer = await importPrivateJwk(jwk, "ECDSA");
      // Key domains (src/crypto/key-domains.ts): the deriver holds the timeslice root, this the token root.
      const { version, status, sliceSeconds, publicJwk } = row;
      return { kv: { version, status, sliceSeconds, publicJwk, deriver }, signer, tokenRoot: tokenRoot(scalar) };
    } finally {
      zeroize(scalar);
      jwk.d = "";
    }
  }

  private kekMismatch(row: MasterKeyRow, why: string): KekMismatchError {
    return new KekMismatchError(
      `master key version ${row.version} ${why}: expected KEK fingerprint ${row.kekId}, configured MASTER_KEY_ENCRYPTION_KEY has fingerprint ${this.o.kekId}; ` +
        "start with the KEK that wrapped it, or rewrap with `bun run keys:rewrap-kek` (MASTER_KEY_ENCRYPTION_KEY_PREVIOUS = the old KEK, MASTER_KEY_ENCRYPTION_KEY = the new one)",
    );
  }

  private async unwrapJwk(row: MasterKeyRow) {
    if (row.kekId !== this.o.kekId) throw this.kekMismatch(row, "was wrapped with a different KEK");
    try {
      return await unwrapPrivateJwk(row.privateKeyJwe, this.o.kek, { version: row.version });
    } catch (e) {
      if (e instanceof KekMismatchError)
        throw this.kekMismatch(
          row,
          "does not unwrap with the configured KEK although the stored fingerprints match (damaged row?)",
        );
      throw e;
    }
  }

  // ---- freshness -------------------------------------------------------------------------

  /** At most one cheap stamp query per interval, shared by concurrent callers. */
  fresh(force = false): Promise<void> {
    const now = performance.now();
    if (!force && now - this.lastCheck < this.o.refreshIntervalMs) return Promise.resolve();
    this.inflight ??= this.reload().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async reload(): Promise<void> {
    try {
      const stamp = await this.repo.stamp();
      if (stamp !== this.state.stamp) {
        const before = this.state.active?.row.version;
        this.state = await this.build(await this.repo.list(), stamp);
        const after = this.state.active?.row.version;
        if (after !== before) this.o.log.info("active master key changed", { from: before, to: after });
      }
      this.refreshError = undefined;
    } catch (err) {
      // Keep serving with what we have; a version we cannot unwrap makes readiness fail.
      this.refreshError = err;
      this.o.log.error("master key reload failed; keeping the loaded versions", { err });
    } finally {
      this.lastCheck = performance.now();
    }
  }

  refresh(): Promise<void> {
    return this.fresh(true);
  }

  /** For a version we have not seen (sealed by a process that rotated): reload, at most 10 times/s. */
  async lookup(version: number): Promise<Loaded | undefined> {
    const since = performance.now();
    await this.fresh();
    let l = this.state.byVersion.get(version);
    if (!l) {
      // Another process may have created this version after our last reload (a rotation by
      // keys:rotate or a peer). Every caller that meets an unknown version waits for a reload
      // that began after it looked; concurrent callers share one, so it costs one query.
      await this.reloadSince(since);
      l = this.state.byVersion.get(version);
    }
    return l;
  }

  /**
   * A version that can open what it sealed (not retired, not unknown). Otherwise the same
   * DecryptionFailedError as a bad tag (the cause says which), so callers have one failure path.
   */
  async opener(version: number): Promise<Loaded & { kv: KeyVersion; tokenRoot: Uint8Array }> {
    const l = await this.lookup(version);
    if (!l?.kv || !l.tokenRoot)
      throw new DecryptionFailedError(
        new KeyUnavailableError(`master key version ${version} is ${l ? "retired" : "unknown"}`),
      );
    return l as Loaded & { kv: KeyVersion; tokenRoot: Uint8Array };
  }

  /** Resolves once a reload that started at or after `since` (performance.now()) has finished. */
  private async reloadSince(since: number): Promise<void> {
    for (;;) {
      const f = this.forcedReload;
      if (f && f.startedAt >= since) return f.done;
      if (f) {
        await f.done;
        continue;
      }
      const startedAt = performance.now();
      const done = (async () => {
        // A reload already under way may have read master_keys before `since`: let it finish first.
        if (this.inflight) await this.inflight;
        await this.fresh(true);
      })().finally(() => {
        if (this.forcedReload?.startedAt === startedAt) this.forcedReload = undefined;
      });
      this.forcedReload = { startedAt, done };
      return done;
    }
  }

  async health(): Promise<void> {
    await this.fresh();
    if (!this.state.active?.kv) throw new KeyUnavailableError("no active master key loaded");
    if (this.refreshError) throw new KeyUnavailableError("the last master key reload failed");
  }

  /** The active version with its private parts (after the freshness check). */
  async activeLoaded(): Promise<Loaded & { kv: KeyVersion; signer: CryptoKey; tokenRoot: Uint8Array }> {
    await this.fresh();
    const a = this.state.active;
    if (!a?.kv || !a.signer || !a.tokenRoot) throw new KeyUnavailableError("no active master key");
    return a as Loaded & { kv: KeyVersion; signer: CryptoKey; tokenRoot: Uint8Array };
  }

  /** The active version as loaded now, without a freshness check (start-up, logging). */
  get loadedActive(): Loaded | undefined {
    return this.state.active;
  }

  /** Every loaded version, by version number (after the caller's freshness check). */
  loaded(): Loaded[] {
    return [...this.state.byVersion.values()];
  }

  close(): void {
    for (const l of this.state.byVersion.values()) destroy(l);
    this.state = EMPTY;
  }
}

function destroy(l: Loaded): void {
  l.kv?.deriver.destroy();
  zeroize(l.tokenRoot);
}
