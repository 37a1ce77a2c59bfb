/**
 * The key hierarchy at run time: loads (or, on an empty table, creates) the master key versions,
 * keeps their private halves in memory only (GGM roots and non-extractable signing keys), seals and
 * opens envelopes, signs, rotates and retires. Notices other processes' rotations within ~1 s.
 */
import {
  type EcPublicJwk,
  MAX_SLICE,
  SliceKeyDeriver,
  type SliceKey,
  sliceIndex,
  leafSeed,
  decryptEnvelope,
  encryptEnvelope,
  generateMasterKeyPair,
  importPrivateJwk,
  masterScalar,
  readEnvelopeHeader,
  signPayload,
  signKeyEndorsement,
  signSliceKey,
  SLICE_STATEMENT_TTL_MS,
  sliceKid,
  slicePublicJwk,
  sliceRange,
  unwrapPrivateJwk,
  wrapPrivateJwk,
  zeroize,
  LruCache,
  keyringMacKey,
  isTokenEnvelope,
  openTokenEnvelope,
  readTokenEnvelopeHeader,
  sealTokenEnvelope,
  tokenRoot,
} from "../crypto/index.ts";
import type { AuditEvent, AuditSink, AuditTx } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import type { Database } from "../db/database.ts";
import {
  ConflictError,
  DecryptionFailedError,
  KekMismatchError,
  KeyUnavailableError,
  NotFoundError,
  ValidationError,
} from "../errors.ts";
import type { Logger } from "../log.ts";
import { availableParallelism } from "node:os";
import { type TokenResealItem, type TokenResealJob, runTokenResealJob } from "../crypto/reseal.ts";
import { ResealPool } from "./reseal-pool.ts";
import { RETIRE_GRACE_MS, WARM_SLICES, statementWindow, stillFresh } from "./slice-statements.ts";
import {
  type Keyring,
  MasterKeyRepository,
  checkPublicMatches,
  checkRow,
  loadKeyring,
  type MasterKeyRow,
} from "./repository.ts";
import type { Rewrappable } from "./rewrap.ts";
import type { KeyService, KeyStatus, KeyVersion, SealedValue, TokenResealRequest } from "./types.ts";

export type { Keyring };

export interface KeyServiceOptions {
  db: Database;
  kek: Uint8Array;
  kekId: string;
  /** Slice length for versions created by this process (existing versions keep theirs). */
  sliceSeconds: number;
  clock?: Clock;
  log: Logger;
  audit?: AuditSink;
  /** Called once the keys are loaded, before any audit event is recorded (the audit signer needs them). */
  onLoaded?: (svc: ManagedKeyService) => void;
  /** Stores whose records count towards "still protects" and block retirement. */
  rewrappables?: Rewrappable[];
  /** How often the active version is re-checked against the database (default 1000 ms). */
  refreshIntervalMs?: number;
  /** Worker threads for `resealTokens` (rotation); 0 = on the calling thread. Default: cores, at most 4. */
  resealWorkers?: number;
}

/** Envelopes per worker job: small enough to spread a batch over the workers, large enough to amortise the hop. */
const RESEAL_CHUNK = 128;

export interface KeyVersionInfo {
  version: number;
  status: KeyStatus;
  sliceSeconds: number;
  kekId: string;
  createdAt: string;
  rotatedAt: string | null;
  retiredAt: string | null;
  /** Records still sealed under this version, over all registered stores. */
  records: number;
  recordsByStore: Record<string, number>;
}

export interface SignedSliceKey {
  version: number;
  slice: number;
  kid: string;
  sliceSeconds: number;
  /** The version's status when signed; data sources encrypt only to `active`. */
  status: "active" | "decrypt-only";
  /** ISO 8601 start (inclusive) and end (exclusive) of the slice. */
  from: string;
  to: string;
  /** ISO 8601 validity of the signed statement (its `iat`/`exp`). */
  issuedAt: string;
  expiresAt: string;
  publicJwk: EcPublicJwk;
  /** Compact JWS (ES256, kid = version) over the slice key statement; see src/crypto/sign.ts. */
  signature: string;
}

export interface KeyEndorsementView {
  endorser: number;
  version: number;
  /** Compact JWS (ES256, kid = endorser, typ chronokms-key-endorsement+json); see src/crypto/sign.ts. */
  signature: string;
}

export interface ManagedKeyService extends KeyService {
  readonly kekId: string;
  /** Current active → decrypt-only, new version active; serialized across processes. */
  rotate(opts?: { actor?: string }): Promise<{ version: number; previous: number | null }>;
  /** Refuses the active version and any version records still need. Idempotent. */
  retire(version: number, opts?: { actor?: string }): Promise<{ version: number; alreadyRetired: boolean }>;
  versions(): Promise<KeyVersionInfo[]>;
  /**
   * Public, signed slice key of `version` (default: active) for a slice in its signing window
   * (src/keys/slice-statements.ts); `"current"` = the slice of now. Cached; `charge` is called
   * before a statement has to be signed for this lookup (the route's per-address limit).
   */
  signedSliceKey(slice: number | "current", version?: number, opts?: { charge?: () => void }): Promise<SignedSliceKey>;
  /**
   * Public: each version that is not retired endorses every later version that is not retired
   * (a JWS by the older master key over the newer public key), so a data source that pinned an
   * older version can follow rotations without trusting the unsigned JWKS.
   */
  endorsements(): Promise<KeyEndorsementView[]>;
  register(store: Rewrappable): void;
  rewrappables(): readonly Rewrappable[];
  /** Re-reads master_keys now. */
  refresh(): Promise<void>;
  /**
   * Every version's public key whose row passes its keyring MAC (for audit verification), and the
   * versions refused, with why. Reads master_keys now.
   */
  keyring(): Promise<Keyring>;
  /** Throws unless an active version is loaded and the last reload succeeded (readiness). */
  health(): Promise<void>;
  close(): void;
}

interface Loaded {
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

const SYSTEM_ACTOR = "system:keys";

interface StatementEntry {
  p: Promise<SignedSliceKey>;
  iat: number;
  status: KeyStatus;
}

export async function createKeyService(opts: KeyServiceOptions): Promise<ManagedKeyService> {
  const svc = new KeyServiceImpl(opts);
  await svc.start();
  return svc;
}

class KeyServiceImpl implements ManagedKeyService {
  readonly kekId: string;
  private readonly repo: MasterKeyRepository;
  private readonly kek: Uint8Array;
  private readonly macKey: Uint8Array;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly audit?: AuditSink;
  private readonly refreshMs: number;
  private readonly stores = new Map<string, Rewrappable>();
  // Big enough for a whole signing window of 60-s slices (~1500), so a sweep cannot evict the slices around now.
  private readonly signedSlices = new LruCache<string, StatementEntry>(4096);
  /** Endorsements signed so far ("endorser>version"); few versions exist, so this stays small. */
  private readonly endorsed = new Map<string, Promise<string>>();
  /** The active version's statements around now (WARM_SLICES), apart from the LRU so no sweep evicts them. */
  private warm = new Map<string, StatementEntry>();
  private warmedAt = -Infinity;
  private warmedVersion = 0;
  private state: State = { stamp: "", byVersion: new Map(), active: undefined };
  private lastCheck = -Infinity;
  private forcedReload: { startedAt: number; done: Promise<void> } | undefined;
  private inflight: Promise<void> | undefined;
  private refreshError: unknown;
  private pool: ResealPool | undefined;

  constructor(private readonly opts: KeyServiceOptions) {
    this.kek = opts.kek;
    this.macKey = keyringMacKey(opts.kek);
    this.repo = new MasterKeyRepository(opts.db, this.macKey);
    this.kekId = opts.kekId;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log;
    this.audit = opts.audit;
    this.refreshMs = opts.refreshIntervalMs ?? 1000;
    for (const s of opts.rewrappables ?? []) this.register(s);
  }

  async start(): Promise<void> {
    let rows = await this.repo.list();
    let created: Awaited<ReturnType<typeof this.generateFirst>> | undefined;
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
    // The audit log signs its checkpoints with this service, so it can only be told once keys are loaded.
    this.opts.onLoaded?.(this);
    if (created)
      await this.record({
        eventType: "KEY_GENERATED",
        actor: SYSTEM_ACTOR,
        target: `key:v${created.version}`,
        success: true,
        details: { version: created.version, kekId: this.kekId, sliceSeconds: created.sliceSeconds },
      });
    const active = this.state.active;
    if (!active)
      throw new KeyUnavailableError("master_keys has versions but none is active; restore the active row or rotate");
    this.log.info("master key loaded", { version: active.row.version, kekId: this.kekId, versions: rows.length });
  }

  /** Version 1 under the lock; a process that loses the race finds the winner's row and creates nothing. */
  private async generateFirst(): Promise<MasterKeyRow | null> {
    const pair = await generateMasterKeyPair({ kid: "1" });
    const jwe = await wrapPrivateJwk(pair.privateJwk, this.kek, { version: 1 });
    pair.privateJwk.d = "";
    return this.repo.locked(async (tx) => {
      if ((await tx.masterKey.count()) > 0) return null;
      return this.repo.insert(tx, {
        version: 1,
        publicJwk: signingJwk(pair.publicJwk, 1),
        privateKeyJwe: jwe,
        kekId: this.kekId,
        sliceSeconds: this.opts.sliceSeconds,
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
        const { jwk } = await this.unwrapJwk(row);
        try {
          await checkPublicMatches(row, jwk);
        } finally {
          jwk.d = "";
        }
        await this.repo.setMac(tx, row);
      }
      this.log.info("keyring MACs written for master key rows made before they existed", {
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
      if (row.kekId !== this.kekId) throw this.kekMismatch(row, "was wrapped with a different KEK");
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
    for (const [v, prev] of this.state.byVersion) {
      if (prev.kv && !byVersion.get(v)?.kv) {
        prev.kv.deriver.destroy();
        zeroize(prev.tokenRoot);
      }
    }
    return { stamp, byVersion, active };
  }

  private async unwrap(row: MasterKeyRow): Promise<{ kv: KeyVersion; signer: CryptoKey; tokenRoot: Uint8Array }> {
    const { jwk } = await this.unwrapJwk(row);
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
      return {
        kv: {
          version: row.version,
          status: row.status,
          sliceSeconds: row.sliceSeconds,
          publicJwk: row.publicJwk,
          deriver,
        },
        signer,
        tokenRoot: tokenRoot(scalar),
      };
    } finally {
      zeroize(scalar);
      jwk.d = "";
    }
  }

  private kekMismatch(row: MasterKeyRow, why: string): KekMismatchError {
    return new KekMismatchError(
      `master key version ${row.version} ${why}: expected KEK fingerprint ${row.kekId}, configured MASTER_KEY_ENCRYPTION_KEY has fingerprint ${this.kekId}; ` +
        "start with the KEK that wrapped it, or rewrap with `bun run keys:rewrap-kek` (MASTER_KEY_ENCRYPTION_KEY_PREVIOUS = the old KEK, MASTER_KEY_ENCRYPTION_KEY = the new one)",
    );
  }

  private async unwrapJwk(row: MasterKeyRow) {
    const mismatch = (why: string) =>
      new KekMismatchError(
        `master key version ${row.version} ${why}: expected KEK fingerprint ${row.kekId}, configured MASTER_KEY_ENCRYPTION_KEY has fingerprint ${this.kekId}; ` +
          "start with the KEK that wrapped it, or rewrap with `bun run keys:rewrap-kek` (MASTER_KEY_ENCRYPTION_KEY_PREVIOUS = the old KEK, MASTER_KEY_ENCRYPTION_KEY = the new one)",
      );
    if (row.kekId !== this.kekId) throw mismatch("was wrapped with a different KEK");
    let jwk;
    try {
      jwk = await unwrapPrivateJwk(row.privateKeyJwe, this.kek, { version: row.version });
    } catch (e) {
      if (e instanceof KekMismatchError)
        throw mismatch("does not unwrap with the configured KEK although the stored fingerprints match (damaged row?)");
      throw e;
    }
    return { jwk };
  }

  // ---- freshness -------------------------------------------------------------------------

  /** At most one cheap stamp query per interval, shared by concurrent callers. */
  private ensureFresh(force = false): Promise<void> {
    const now = performance.now();
    if (!force && now - this.lastCheck < this.refreshMs) return Promise.resolve();
    return (this.inflight ??= this.reload().finally(() => {
      this.inflight = undefined;
    }));
  }

  private async reload(): Promise<void> {
    try {
      const stamp = await this.repo.stamp();
      if (stamp !== this.state.stamp) {
        const before = this.state.active?.row.version;
        this.state = await this.build(await this.repo.list(), stamp);
        const after = this.state.active?.row.version;
        if (after !== before) this.log.info("active master key changed", { from: before, to: after });
      }
      this.refreshError = undefined;
    } catch (err) {
      // Keep serving with what we have; a version we cannot unwrap makes readiness fail.
      this.refreshError = err;
      this.log.error("master key reload failed; keeping the loaded versions", { err });
    } finally {
      this.lastCheck = performance.now();
    }
  }

  refresh(): Promise<void> {
    return this.ensureFresh(true);
  }

  /** For a version we have not seen (sealed by a process that rotated): reload, at most 10 times/s. */
  private async lookup(version: number): Promise<Loaded | undefined> {
    const since = performance.now();
    await this.ensureFresh();
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
        await this.ensureFresh(true);
      })().finally(() => {
        if (this.forcedReload?.startedAt === startedAt) this.forcedReload = undefined;
      });
      this.forcedReload = { startedAt, done };
      return done;
    }
  }

  async health(): Promise<void> {
    await this.ensureFresh();
    if (!this.state.active?.kv) throw new KeyUnavailableError("no active master key loaded");
    if (this.refreshError) throw new KeyUnavailableError("the last master key reload failed");
  }

  // ---- KeyService --------------------------------------------------------------------------

  async active(): Promise<KeyVersion> {
    await this.ensureFresh();
    const kv = this.state.active?.kv;
    if (!kv) throw new KeyUnavailableError("no active master key");
    return kv;
  }

  async get(version: number): Promise<KeyVersion> {
    const l = await this.lookup(version);
    if (!l) throw new KeyUnavailableError(`master key version ${version} does not exist`);
    if (!l.kv) throw new KeyUnavailableError(`master key version ${version} is retired`);
    return l.kv;
  }

  async seal(plaintext: string | Uint8Array, opts: { ctx: string; ts: number }): Promise<SealedValue> {
    const kv = await this.active();
    const sk = await kv.deriver.forTime(opts.ts);
    const jwe = await encryptEnvelope(plaintext, {
      publicKey: sk.publicKey,
      kid: sk.kid,
      ts: opts.ts,
      ctx: opts.ctx,
      sliceSeconds: kv.sliceSeconds,
    });
    return { jwe, version: kv.version };
  }

  /**
   * A retired or unknown version is the same DecryptionFailedError as a bad tag (the cause says
   * which), so callers have one failure path and learn nothing from the difference.
   */
  async open(jwe: string, opts: { expectedCtx: string }): Promise<Uint8Array> {
    const h = readEnvelopeHeader(jwe);
    const l = await this.lookup(h.version);
    if (!l?.kv)
      throw new DecryptionFailedError(
        new KeyUnavailableError(`master key version ${h.version} is ${l ? "retired" : "unknown"}`),
      );
    try {
      const sk = await l.kv.deriver.get(h.slice);
      return await decryptEnvelope(jwe, {
        privateKey: sk.privateKey,
        expectedCtx: opts.expectedCtx,
        expectedKid: h.kid,
        sliceSeconds: l.kv.sliceSeconds,
      });
    } catch (e) {
      throw e instanceof DecryptionFailedError ? e : new DecryptionFailedError(e);
    }
  }

  // ---- token domain ---------------------------------------------------------------------------

  async sealToken(plaintext: string | Uint8Array, opts: { ctx: string }): Promise<SealedValue> {
    await this.ensureFresh();
    const a = this.state.active;
    if (!a?.kv || !a.tokenRoot) throw new KeyUnavailableError("no active master key");
    return {
      jwe: sealTokenEnvelope(plaintext, { root: a.tokenRoot, version: a.row.version, ctx: opts.ctx }),
      version: a.row.version,
    };
  }

  /** Which key opens a stored token value; DecryptionFailedError (cause says why) when none may. */
  private async tokenSource(
    jwe: string,
  ): Promise<
    { format: "v2"; version: number; root: Uint8Array } | { format: "v1"; kv: KeyVersion; kid: string; slice: number }
  > {
    if (isTokenEnvelope(jwe)) {
      const h = readTokenEnvelopeHeader(jwe);
      const l = await this.lookup(h.version);
      if (!l?.tokenRoot)
        throw new DecryptionFailedError(
          new KeyUnavailableError(`master key version ${h.version} is ${l ? "retired" : "unknown"}`),
        );
      return { format: "v2", version: h.version, root: l.tokenRoot };
    }
    const h = readEnvelopeHeader(jwe);
    const l = await this.lookup(h.version);
    if (!l?.kv)
      throw new DecryptionFailedError(
        new KeyUnavailableError(`master key version ${h.version} is ${l ? "retired" : "unknown"}`),
      );
    // A v1 envelope under a version created since key separation can only be a forgery (anyone
    // can encrypt to a published slice key).
    if (!l.row.legacyTokenEnvelopes)
      throw new DecryptionFailedError(new Error(`v1 token envelope under version ${h.version}, which never held one`));
    return { format: "v1", kv: l.kv, kid: h.kid, slice: h.slice };
  }

  async openToken(jwe: string, opts: { ctx: string; legacyCtx: string }): Promise<Uint8Array> {
    const src = await this.tokenSource(jwe);
    if (src.format === "v2")
      return openTokenEnvelope(jwe, { root: src.root, version: src.version, expectedCtx: opts.ctx });
    try {
      const sk = await src.kv.deriver.get(src.slice);
      return await decryptEnvelope(jwe, {
        privateKey: sk.privateKey,
        expectedCtx: opts.legacyCtx,
        expectedKid: src.kid,
        sliceSeconds: src.kv.sliceSeconds,
      });
    } catch (e) {
      throw e instanceof DecryptionFailedError ? e : new DecryptionFailedError(e);
    }
  }

  async resealTokens(
    items: ReadonlyArray<TokenResealRequest>,
  ): Promise<{ version: number; jwes: Array<string | null> }> {
    await this.ensureFresh();
    const to = this.state.active;
    if (!to?.kv || !to.tokenRoot) throw new KeyUnavailableError("no active master key");
    const workers = this.opts.resealWorkers ?? Math.min(4, availableParallelism());
    const jwes: Array<string | null> = new Array(items.length).fill(null);
    const jobs: Array<{ job: TokenResealJob; at: number[] }> = [];
    let job: { job: TokenResealJob; at: number[] } | undefined;
    const fromKeys = new Map<string, SliceKey>();
    for (const [i, it] of items.entries()) {
      let src;
      try {
        src = await this.tokenSource(it.jwe);
      } catch {
        continue; // malformed, unknown/retired version, or a v1 value where none may be: stays null
      }
      if (!job || job.at.length >= RESEAL_CHUNK) {
        job = {
          job: {
            items: [],
            tokenRoots: { [to.row.version]: to.tokenRoot },
            privateKeys: {},
            toVersion: to.row.version,
          },
          at: [],
        };
        jobs.push(job);
      }
      let item: TokenResealItem;
      if (src.format === "v2") {
        job.job.tokenRoots[src.version] ??= src.root;
        item = { jwe: it.jwe, expectedCtx: it.ctx, newCtx: it.newCtx, from: { format: "v2", version: src.version } };
      } else {
        // Most v1 items share a few slices: derive each once per call.
        const fk = fromKeys.get(src.kid) ?? (await src.kv.deriver.get(src.slice));
        fromKeys.set(src.kid, fk);
        // Workers get JWKs (structured clone); on this thread the imported keys are used directly.
        job.job.privateKeys[fk.kid] ??= workers > 0 ? fk.privateJwk : fk.privateKey;
        item = {
          jwe: it.jwe,
          expectedCtx: it.legacyCtx,
          newCtx: it.newCtx,
          from: { format: "v1", kid: src.kid, sliceSeconds: src.kv.sliceSeconds },
        };
      }
      job.job.items.push(item);
      job.at.push(i);
    }
    const pool = workers > 0 ? (this.pool ??= new ResealPool(workers)) : undefined;
    await Promise.all(
      jobs.map(async ({ job: j, at }) => {
        const out = pool ? await pool.run(j) : await runTokenResealJob(j);
        for (const [k, idx] of at.entries()) jwes[idx] = out[k] ?? null;
      }),
    );
    return { version: to.row.version, jwes };
  }

  async sign(payload: unknown, typ: string): Promise<string> {
    await this.ensureFresh();
    const a = this.state.active;
    if (!a?.signer) throw new KeyUnavailableError("no active master key");
    return signPayload(payload, a.signer, { kid: String(a.row.version), typ });
  }

  async jwks(): Promise<EcPublicJwk[]> {
    await this.ensureFresh();
    return [...this.state.byVersion.values()]
      .filter((l) => l.row.status !== "retired")
      .map((l) => signingJwk(l.row.publicJwk, l.row.version));
  }

  // ---- management -------------------------------------------------------------------------

  async signedSliceKey(
    slice: number | "current",
    version?: number,
    opts: { charge?: () => void } = {},
  ): Promise<SignedSliceKey> {
    const v = version ?? (await this.active()).version;
    const l = await this.lookup(v);
    if (!l) throw new NotFoundError(`master key version ${v}`);
    if (!l.kv || !l.signer || l.row.status === "retired")
      throw new KeyUnavailableError(`master key version ${v} is retired`);
    const status = l.row.status;
    const now = this.clock.now();
    const s = slice === "current" ? sliceIndex(now, l.kv.sliceSeconds) : slice;
    if (!Number.isSafeInteger(s) || s < 0 || s > MAX_SLICE)
      throw new ValidationError(`slice must be an integer from 0 to ${MAX_SLICE}`);
    sliceRange(s, l.kv.sliceSeconds); // ValidationError past the representable time range
    const w = statementWindow(status, l.kv.sliceSeconds, now, {
      createdAt: l.row.createdAt.getTime(),
      rotatedAt: l.row.rotatedAt?.getTime() ?? null,
    });
    if (!w || s < w.from || s > w.to) {
      throw new ValidationError(
        `slice ${s} of key version ${v} (${status}) is outside the slices signed now` +
          (w
            ? ` (${w.from}..${w.to}: ${status === "active" ? "24 h back to 1 h ahead" : "ended slices of the last 24 h within its active period"})`
            : " (none: a decrypt-only version is signed only for ended slices of its active period)"),
        { window: w },
      );
    }
    if (status === "active") this.warmStatements(l, now);
    const usable = (e: StatementEntry | undefined) => e !== undefined && e.status === status && stillFresh(e.iat, now);
    const warm = this.warm.get(`${v}:${s}`);
    if (usable(warm)) return warm!.p;
    const hit = this.signedSlices.get(`${v}:${s}`);
    if (usable(hit)) return hit!.p;
    opts.charge?.(); // a lookup that has to sign counts against the caller's budget
    return this.signStatement(l, s, now);
  }

  async endorsements(): Promise<KeyEndorsementView[]> {
    await this.ensureFresh();
    const live = [...this.state.byVersion.values()]
      .filter((l) => l.signer && l.row.status !== "retired")
      .sort((a, b) => a.row.version - b.row.version);
    const out: Array<Promise<KeyEndorsementView>> = [];
    for (const [i, by] of live.entries()) {
      for (const of of live.slice(i + 1)) {
        const key = `${by.row.version}>${of.row.version}`;
        let p = this.endorsed.get(key);
        if (!p) {
          p = signKeyEndorsement(
            {
              endorser: by.row.version,
              version: of.row.version,
              jwk: of.row.publicJwk,
              createdAt: of.row.createdAt.toISOString(),
              sliceSeconds: of.row.sliceSeconds,
            },
            by.signer!,
          );
          this.endorsed.set(key, p);
          p.catch(() => this.endorsed.delete(key));
        }
        out.push(p.then((signature) => ({ endorser: by.row.version, version: of.row.version, signature })));
      }
    }
    return Promise.all(out);
  }

  /** Signs the active version's statements around now ahead of time, at most every 10 s. */
  private warmStatements(l: Loaded, now: number): void {
    if (now - this.warmedAt < 10_000 && this.warmedVersion === l.row.version) return;
    this.warmedAt = now;
    this.warmedVersion = l.row.version;
    const cur = sliceIndex(now, l.kv!.sliceSeconds);
    const warm = new Map<string, StatementEntry>();
    for (let s = Math.max(0, cur - WARM_SLICES.before); s <= Math.min(MAX_SLICE, cur + WARM_SLICES.after); s++) {
      const key = `${l.row.version}:${s}`;
      let hit = this.warm.get(key) ?? this.signedSlices.get(key);
      if (!hit || hit.status !== l.row.status || !stillFresh(hit.iat, now)) {
        this.signStatement(l, s, now).catch(() => {});
        hit = this.signedSlices.get(key);
      }
      if (hit) warm.set(key, hit);
    }
    this.warm = warm;
  }

  private signStatement(l: Loaded, slice: number, now: number): Promise<SignedSliceKey> {
    const kv = l.kv!;
    const signer = l.signer!;
    const v = kv.version;
    const status = l.row.status as "active" | "decrypt-only";
    const key = `${v}:${slice}`;
    const p = (async (): Promise<SignedSliceKey> => {
      const range = sliceRange(slice, kv.sliceSeconds);
      // Derived outside the deriver's cache: public lookups of arbitrary slices must not evict the hot ones.
      const leaf = leafSeed(kv.deriver.rootSeed, slice);
      const kid = sliceKid(v, slice);
      let publicJwk: EcPublicJwk;
      try {
        publicJwk = await slicePublicJwk(leaf, kid);
      } finally {
        zeroize(leaf);
      }
      const signature = await signSliceKey(publicJwk, signer, { sliceSeconds: kv.sliceSeconds, iat: now, status });
      return {
        version: v,
        slice,
        kid,
        sliceSeconds: kv.sliceSeconds,
        status,
        from: new Date(range.startMs).toISOString(),
        to: new Date(range.endMs).toISOString(),
        issuedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + SLICE_STATEMENT_TTL_MS).toISOString(),
        publicJwk,
        signature,
      };
    })();
    const entry: StatementEntry = { p, iat: now, status };
    this.signedSlices.set(key, entry);
    p.catch(() => {
      if (this.signedSlices.get(key) === entry) this.signedSlices.delete(key);
      if (this.warm.get(key) === entry) this.warm.delete(key);
    });
    return p;
  }

  async rotate(opts: { actor?: string } = {}): Promise<{ version: number; previous: number | null }> {
    // Key generation is slow-ish: done before the audit transaction, which only writes.
    const pair = await generateMasterKeyPair();
    const sliceSeconds = this.opts.sliceSeconds;
    const result = await this.audited(
      async (tx) => {
        await this.repo.lock(tx);
        const rows = await this.repo.list(tx);
        const current = rows.find((r) => r.status === "active") ?? null;
        const version = rows.reduce((m, r) => Math.max(m, r.version), 0) + 1;
        const jwe = await wrapPrivateJwk({ ...pair.privateJwk, kid: String(version) }, this.kek, { version });
        const now = new Date(this.clock.now());
        if (current) await this.repo.setStatus(tx, current.version, "decrypt-only", now);
        await this.repo.insert(tx, {
          version,
          publicJwk: signingJwk(pair.publicJwk, version),
          privateKeyJwe: jwe,
          kekId: this.kekId,
          sliceSeconds,
          status: "active",
        });
        return { version, previous: current?.version ?? null };
      },
      (r) => ({
        eventType: "KEY_ROTATED",
        actor: opts.actor ?? SYSTEM_ACTOR,
        target: `key:v${r.version}`,
        success: true,
        details: { ...r, kekId: this.kekId, sliceSeconds },
      }),
    );
    pair.privateJwk.d = "";
    await this.refresh();
    this.log.info("master key rotated", result);
    return result;
  }

  async endLegacyTokenEnvelopes(): Promise<number[]> {
    await this.ensureFresh();
    if (![...this.state.byVersion.values()].some((l) => l.row.legacyTokenEnvelopes)) return [];
    const cleared = await this.repo.locked(async (tx) => {
      for (const s of this.stores.values()) if (((await s.countLegacy?.(tx)) ?? 0) > 0) return [];
      return this.repo.clearLegacyTokenEnvelopes(tx);
    });
    if (cleared.length === 0) return cleared;
    await this.refresh();
    this.log.info("no v1 token envelope left: v1 envelopes are refused from now on", { versions: cleared });
    return cleared;
  }

  async retire(version: number, opts: { actor?: string } = {}): Promise<{ version: number; alreadyRetired: boolean }> {
    await this.refresh();
    const row = this.state.byVersion.get(version)?.row;
    if (!row) throw new NotFoundError(`master key version ${version}`);
    if (row.status === "retired") return { version, alreadyRetired: true };
    if (row.status === "active")
      throw new ConflictError(
        `master key version ${version} is the active version; rotate first, then retire it once nothing needs it`,
      );
    const byStore: Record<string, number> = {};
    let total = 0;
    for (const s of this.stores.values()) {
      const n = (await s.countByVersion()).get(version) ?? 0;
      byStore[s.name] = n;
      total += n;
    }
    if (total > 0) {
      const list = Object.entries(byStore)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k}: ${n}`)
        .join(", ");
      // Name the records (up to 20 per store), so a row that rewrap cannot open can be found and dealt with.
      const blocking: Array<{ store: string; id: string; label: string }> = [];
      for (const s of this.stores.values())
        if ((byStore[s.name] ?? 0) > 0 && s.listByVersion)
          for (const r of await s.listByVersion(version, 20)) blocking.push({ store: s.name, ...r });
      const named =
        blocking.length > 0
          ? `: ${blocking.map((b) => `${b.store} ${b.id} (${b.label})`).join(", ")}${blocking.length < total ? ", …" : ""}`
          : "";
      throw new ConflictError(
        `master key version ${version} still protects ${total} record(s) (${list})${named}; re-encrypt them first with \`bun run keys:rotate --no-rotate\` (a record that does not decrypt must be fixed or deleted)`,
        { records: byStore, blocking },
      );
    }
    await this.audited(
      async (tx) => {
        await this.repo.lock(tx);
        const cur = (await this.repo.list(tx)).find((r) => r.version === version);
        if (cur?.status !== "decrypt-only")
          throw new ConflictError(
            `master key version ${version} changed status concurrently (now ${cur?.status ?? "gone"}); retry`,
          );
        // Data sources may still encrypt to it while an `active` statement of it is valid or cached
        // (which also covers a process that sealed under it before it noticed the rotation).
        this.assertRetirable(cur);
        await this.repo.setStatus(tx, version, "retired", new Date(this.clock.now()));
      },
      () => ({
        eventType: "KEY_RETIRED",
        actor: opts.actor ?? SYSTEM_ACTOR,
        target: `key:v${version}`,
        success: true,
        details: { version },
      }),
    );
    await this.refresh();
    this.log.info("master key retired", { version });
    return { version, alreadyRetired: false };
  }

  /** Refuses while statements signed before the rotation may still be used (RETIRE_GRACE_MS). */
  private assertRetirable(row: MasterKeyRow): void {
    const since = row.rotatedAt?.getTime();
    // Every rotation records rotatedAt; without it we cannot tell, so fail closed.
    if (since === undefined)
      throw new ConflictError(
        `master key version ${row.version} has no rotation time recorded (master_keys.rotated_at); cannot tell when its slice statements expire`,
      );
    const possibleAt = since + RETIRE_GRACE_MS;
    if (this.clock.now() < possibleAt) {
      throw new ConflictError(
        `master key version ${row.version} was rotated out at ${new Date(since).toISOString()}; slice statements signed before then stay valid (and cached) until ` +
          `${new Date(possibleAt).toISOString()}, so data sources may still encrypt to it: retire it at or after ${new Date(possibleAt).toISOString()}`,
        { retirableAt: new Date(possibleAt).toISOString() },
      );
    }
  }

  async versions(): Promise<KeyVersionInfo[]> {
    const rows = await this.repo.list();
    const counts = await Promise.all(
      [...this.stores.values()].map(async (s) => [s.name, await s.countByVersion()] as const),
    );
    return rows.map((r) => {
      const recordsByStore: Record<string, number> = {};
      let records = 0;
      for (const [name, c] of counts) {
        const n = c.get(r.version) ?? 0;
        recordsByStore[name] = n;
        records += n;
      }
      return {
        version: r.version,
        status: r.status,
        sliceSeconds: r.sliceSeconds,
        kekId: r.kekId,
        createdAt: r.createdAt.toISOString(),
        rotatedAt: r.rotatedAt?.toISOString() ?? null,
        retiredAt: r.retiredAt?.toISOString() ?? null,
        records,
        recordsByStore,
      };
    });
  }

  register(store: Rewrappable): void {
    this.stores.set(store.name, store);
  }

  rewrappables(): readonly Rewrappable[] {
    return [...this.stores.values()];
  }

  close(): void {
    this.pool?.close();
    this.pool = undefined;
    for (const l of this.state.byVersion.values()) {
      l.kv?.deriver.destroy();
      zeroize(l.tokenRoot);
    }
    this.state = { stamp: "", byVersion: new Map(), active: undefined };
    this.signedSlices.clear();
    this.warm.clear();
    this.endorsed.clear();
  }

  async keyring(): Promise<Keyring> {
    return loadKeyring(await this.repo.list(), this.macKey);
  }

  private async record(event: AuditEvent): Promise<void> {
    if (this.audit) await this.audit.record(event);
  }

  /** The change and its audit row in one transaction (without an audit sink: the change alone, in a transaction). */
  private audited<T>(change: (tx: AuditTx) => Promise<T>, event: (r: T) => AuditEvent): Promise<T> {
    if (this.audit) return this.audit.apply({ change, event });
    return this.opts.db.prisma.$transaction(change, { timeout: 30_000, maxWait: 30_000 });
  }
}

/** The public JWK as published in the JWKS: kid = version, ES256 signing key. */
function signingJwk(jwk: EcPublicJwk, version: number): EcPublicJwk {
  return { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, kid: String(version), alg: "ES256", use: "sig" };
}
