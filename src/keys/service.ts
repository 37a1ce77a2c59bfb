/**
 * The key service as one object: the loaded keyring (src/keys/keyring.ts), its crypto operations
 * (operations.ts), the signed public statements (statements.ts) and the versions' lifecycle
 * (lifecycle.ts), wired together. Callers see `KeyService` / `ManagedKeyService` only.
 */
import type { AuditSink } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import type { EcPublicJwk } from "../crypto/index.ts";
import type { Database } from "../db/database.ts";
import { KeyUnavailableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { LiveKeyring } from "./keyring.ts";
import { KeyLifecycle, type KeyVersionInfo, SYSTEM_ACTOR } from "./lifecycle.ts";
import { KeyOperations } from "./operations.ts";
import { type Keyring, loadKeyring } from "./repository.ts";
import type { Rewrappable } from "./rewrap.ts";
import { type KeyEndorsementView, type SignedSliceKey, SliceStatements } from "./statements.ts";
import type { KeyService, KeyVersion, SealedValue, TokenResealRequest } from "./types.ts";

export type { Keyring, KeyVersionInfo, SignedSliceKey, KeyEndorsementView };

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
  /** Worker threads for `resealTokens` (rotation); 0 = on the calling thread. Default: none on 2 cores or fewer, else cores − 1, at most 4. */
  resealWorkers?: number;
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

export async function createKeyService(opts: KeyServiceOptions): Promise<ManagedKeyService> {
  const svc = new KeyServiceImpl(opts);
  await svc.start();
  return svc;
}

class KeyServiceImpl implements ManagedKeyService {
  readonly kekId: string;
  private readonly ring: LiveKeyring;
  private readonly ops: KeyOperations;
  private readonly statements: SliceStatements;
  private readonly lifecycle: KeyLifecycle;

  constructor(private readonly opts: KeyServiceOptions) {
    const clock = opts.clock ?? systemClock;
    this.kekId = opts.kekId;
    this.ring = new LiveKeyring({ ...opts, refreshIntervalMs: opts.refreshIntervalMs ?? 1000 });
    this.ops = new KeyOperations(this.ring, opts.resealWorkers);
    this.statements = new SliceStatements(this.ring, clock);
    this.lifecycle = new KeyLifecycle(this.ring, { ...opts, clock });
    for (const s of opts.rewrappables ?? []) this.register(s);
  }

  async start(): Promise<void> {
    const created = await this.ring.load();
    // The audit log signs its checkpoints with this service, so it can only be told once keys are loaded.
    this.opts.onLoaded?.(this);
    if (created)
      await this.lifecycle.record({
        eventType: "KEY_GENERATED",
        actor: SYSTEM_ACTOR,
        target: `key:v${created.version}`,
        success: true,
        details: { version: created.version, kekId: this.kekId, sliceSeconds: created.sliceSeconds },
      });
    const active = this.ring.loadedActive;
    if (!active)
      throw new KeyUnavailableError("master_keys has versions but none is active; restore the active row or rotate");
    this.log.info("master key loaded", {
      version: active.row.version,
      kekId: this.kekId,
      versions: this.ring.loaded().length,
    });
  }

  private get log(): Logger {
    return this.opts.log;
  }

  // ---- keyring ------------------------------------------------------------------------------

  async active(): Promise<KeyVersion> {
    return (await this.ring.activeLoaded()).kv;
  }

  async get(version: number): Promise<KeyVersion> {
    const l = await this.ring.lookup(version);
    if (!l) throw new KeyUnavailableError(`master key version ${version} does not exist`);
    if (!l.kv) throw new KeyUnavailableError(`master key version ${version} is retired`);
    return l.kv;
  }

  refresh(): Promise<void> {
    return this.ring.refresh();
  }

  health(): Promise<void> {
    return this.ring.health();
  }

  async keyring(): Promise<Keyring> {
    return loadKeyring(await this.ring.repo.list(), this.ring.macKey);
  }

  // ---- crypto operations --------------------------------------------------------------------

  seal(plaintext: string | Uint8Array, opts: { ctx: string; ts: number }): Promise<SealedValue> {
    return this.ops.seal(plaintext, opts);
  }

  open(jwe: string, opts: { expectedCtx: string }): Promise<Uint8Array> {
    return this.ops.open(jwe, opts);
  }

  sealToken(plaintext: string | Uint8Array, opts: { ctx: string }): Promise<SealedValue> {
    return this.ops.sealToken(plaintext, opts);
  }

  openToken(jwe: string, opts: { ctx: string; legacyCtx: string; keyVersion?: number }): Promise<Uint8Array> {
    return this.ops.openToken(jwe, opts);
  }

  resealTokens(items: ReadonlyArray<TokenResealRequest>): Promise<{ version: number; jwes: Array<string | null> }> {
    return this.ops.resealTokens(items);
  }

  sign(payload: unknown, typ: string): Promise<string> {
    return this.ops.sign(payload, typ);
  }

  jwks(): Promise<EcPublicJwk[]> {
    return this.ops.jwks();
  }

  signedSliceKey(slice: number | "current", version?: number, opts?: { charge?: () => void }): Promise<SignedSliceKey> {
    return this.statements.signedSliceKey(slice, version, opts);
  }

  endorsements(): Promise<KeyEndorsementView[]> {
    return this.statements.endorsements();
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  rotate(opts?: { actor?: string }): Promise<{ version: number; previous: number | null }> {
    return this.lifecycle.rotate(opts);
  }

  retire(version: number, opts?: { actor?: string }): Promise<{ version: number; alreadyRetired: boolean }> {
    return this.lifecycle.retire(version, opts);
  }

  endLegacyTokenEnvelopes(): Promise<number[]> {
    return this.lifecycle.endLegacyTokenEnvelopes();
  }

  versions(): Promise<KeyVersionInfo[]> {
    return this.lifecycle.versions();
  }

  register(store: Rewrappable): void {
    this.lifecycle.register(store);
  }

  rewrappables(): readonly Rewrappable[] {
    return this.lifecycle.rewrappables();
  }

  close(): void {
    this.ops.close();
    this.ring.close();
    this.statements.clear();
  }
}
