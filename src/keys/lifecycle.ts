/**
 * The life of master key versions: rotation (serialized across processes, audited in the same
 * transaction), retirement (refused while any registered store still needs the version, or while
 * statements signed before the rotation may be in use), the registry of stores rewrap moves, and
 * the end of v1 token-envelope acceptance.
 */
import type { AuditEvent, AuditSink, AuditTx } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import { generateMasterKeyPair } from "../crypto/index.ts";
import type { Database } from "../db/database.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type LiveKeyring, signingJwk } from "./keyring.ts";
import type { MasterKeyRow } from "./repository.ts";
import type { Rewrappable } from "./rewrap.ts";
import { RETIRE_GRACE_MS } from "./slice-statements.ts";
import type { KeyStatus } from "./types.ts";

export const SYSTEM_ACTOR = "system:keys";

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

export class KeyLifecycle {
  private readonly stores = new Map<string, Rewrappable>();

  constructor(
    private readonly ring: LiveKeyring,
    private readonly o: { db: Database; sliceSeconds: number; clock: Clock; log: Logger; audit?: AuditSink },
  ) {}

  async rotate(opts: { actor?: string } = {}): Promise<{ version: number; previous: number | null }> {
    const { repo, kekId } = this.ring;
    // Key generation is slow-ish: done before the audit transaction, which only writes.
    const pair = await generateMasterKeyPair();
    const sliceSeconds = this.o.sliceSeconds;
    const result = await this.audited(
      async (tx) => {
        await repo.lock(tx);
        const rows = await repo.list(tx);
        const current = rows.find((r) => r.status === "active") ?? null;
        const version = rows.reduce((m, r) => Math.max(m, r.version), 0) + 1;
        const jwe = await this.ring.wrap({ ...pair.privateJwk, kid: String(version) }, version);
        const now = new Date(this.o.clock.now());
        if (current) await repo.setStatus(tx, current.version, "decrypt-only", now);
        const publicJwk = signingJwk(pair.publicJwk, version);
        await repo.insert(tx, { version, publicJwk, privateKeyJwe: jwe, kekId, sliceSeconds, status: "active" });
        return { version, previous: current?.version ?? null };
      },
      (r) => ({
        eventType: "KEY_ROTATED",
        actor: opts.actor ?? SYSTEM_ACTOR,
        target: `key:v${r.version}`,
        success: true,
        details: { ...r, kekId, sliceSeconds },
      }),
    );
    pair.privateJwk.d = "";
    await this.ring.refresh();
    this.o.log.info("master key rotated", result);
    return result;
  }

  async endLegacyTokenEnvelopes(): Promise<number[]> {
    await this.ring.fresh();
    if (!this.ring.loaded().some((l) => l.row.legacyTokenEnvelopes)) return [];
    const cleared = await this.ring.repo.locked(async (tx) => {
      for (const s of this.stores.values()) if (((await s.countLegacy?.(tx)) ?? 0) > 0) return [];
      return this.ring.repo.clearLegacyTokenEnvelopes(tx);
    });
    if (cleared.length === 0) return cleared;
    await this.ring.refresh();
    this.o.log.info("no v1 token envelope left: v1 envelopes are refused from now on", { versions: cleared });
    return cleared;
  }

  async retire(version: number, opts: { actor?: string } = {}): Promise<{ version: number; alreadyRetired: boolean }> {
    await this.ring.refresh();
    const row = this.ring.loaded().find((l) => l.row.version === version)?.row;
    if (!row) throw new NotFoundError(`master key version ${version}`);
    if (row.status === "retired") return { version, alreadyRetired: true };
    if (row.status === "active")
      throw new ConflictError(
        `master key version ${version} is the active version; rotate first, then retire it once nothing needs it`,
      );
    await this.assertUnused(version);
    await this.audited(
      async (tx) => {
        await this.ring.repo.lock(tx);
        const cur = (await this.ring.repo.list(tx)).find((r) => r.version === version);
        if (cur?.status !== "decrypt-only")
          throw new ConflictError(
            `master key version ${version} changed status concurrently (now ${cur?.status ?? "gone"}); retry`,
          );
        // Data sources may still encrypt to it while an `active` statement of it is valid or cached
        // (which also covers a process that sealed under it before it noticed the rotation).
        this.assertRetirable(cur);
        await this.ring.repo.setStatus(tx, version, "retired", new Date(this.o.clock.now()));
      },
      () => ({
        eventType: "KEY_RETIRED",
        actor: opts.actor ?? SYSTEM_ACTOR,
        target: `key:v${version}`,
        success: true,
        details: { version },
      }),
    );
    await this.ring.refresh();
    this.o.log.info("master key retired", { version });
    return { version, alreadyRetired: false };
  }

  /** Refuses (naming the records, up to 20 per store) while any registered store holds a record under `version`. */
  private async assertUnused(version: number): Promise<void> {
    const byStore: Record<string, number> = {};
    let total = 0;
    for (const s of this.stores.values()) {
      const n = (await s.countByVersion()).get(version) ?? 0;
      byStore[s.name] = n;
      total += n;
    }
    if (total === 0) return;
    const list = Object.entries(byStore)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k}: ${n}`)
      .join(", ");
    // Named, so a row that rewrap cannot open can be found and dealt with.
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

  /** Refuses while statements signed before the rotation may still be used (RETIRE_GRACE_MS). */
  private assertRetirable(row: MasterKeyRow): void {
    const since = row.rotatedAt?.getTime();
    // Every rotation records rotatedAt; without it we cannot tell, so fail closed.
    if (since === undefined)
      throw new ConflictError(
        `master key version ${row.version} has no rotation time recorded (master_keys.rotated_at); cannot tell when its slice statements expire`,
      );
    const possibleAt = since + RETIRE_GRACE_MS;
    if (this.o.clock.now() < possibleAt) {
      throw new ConflictError(
        `master key version ${row.version} was rotated out at ${new Date(since).toISOString()}; slice statements signed before then stay valid (and cached) until ` +
          `${new Date(possibleAt).toISOString()}, so data sources may still encrypt to it: retire it at or after ${new Date(possibleAt).toISOString()}`,
        { retirableAt: new Date(possibleAt).toISOString() },
      );
    }
  }

  async versions(): Promise<KeyVersionInfo[]> {
    const rows = await this.ring.repo.list();
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

  async record(event: AuditEvent): Promise<void> {
    if (this.o.audit) await this.o.audit.record(event);
  }

  /** The change and its audit row in one transaction (without an audit sink: the change alone, in a transaction). */
  private audited<T>(change: (tx: AuditTx) => Promise<T>, event: (r: T) => AuditEvent): Promise<T> {
    if (this.o.audit) return this.o.audit.apply({ change, event });
    return this.o.db.prisma.$transaction(change, { timeout: 30_000, maxWait: 30_000 });
  }
}
