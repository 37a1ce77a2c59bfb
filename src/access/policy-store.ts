/**
 * Policies in the database, and the compiled set every decision reads from memory. A change made
 * here is compiled at once in this process; other processes see it through PostgreSQL
 * LISTEN/NOTIFY, with a once-a-second version poll (one aggregate query) as the fallback for a
 * missed notification.
 */
import type { Database } from "../db/database.ts";
import { listenChannel, notifyChannel, type ChannelListener } from "../db/listen.ts";
import type { AuditSink } from "../audit/types.ts";
import type { Logger } from "../log.ts";
import type { Policy } from "../db/generated/client.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import { compilePolicies, type CompiledPolicySet } from "../policy/compile.ts";
import { applyPolicyPatch, parsePolicyInput, parsePolicyRecord, type PolicyFields } from "../policy/parse.ts";
import type { PolicyInput, PolicyType } from "../policy/schemas.ts";
import type { PolicyRecord } from "../policy/types.ts";

export const POLICY_CHANNEL = "chronokms_policies";

export interface PolicyView {
  id: string;
  name: string;
  type: string;
  priority: number;
  enabled: boolean;
  scope: unknown;
  config: unknown;
  description: string | null;
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface PolicyStoreOptions {
  db: Database;
  audit: AuditSink;
  log: Logger;
  /** Fallback version poll interval (default 1000 ms); 0 turns it off. */
  pollMs?: number;
}

export class PolicyStore {
  private current: CompiledPolicySet = compilePolicies([]);
  private stamp = "";
  private loadGeneration = 0;
  private appliedGeneration = 0;
  private listener: ChannelListener | undefined;
  private pollTimer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly o: PolicyStoreOptions) {}

  /** Loads the policies (a failure stops start-up) and starts watching for changes. */
  async start(): Promise<void> {
    await this.reload();
    // PostgreSQL: other processes' changes arrive as NOTIFY, and every (re)connect reloads too,
    // since a change may have landed while nobody listened. PGlite is one process: listenChannel
    // does nothing there, every change is local, and the poll only heals a failed local reload.
    const reload = () => void this.reload().catch((err) => this.o.log.warn("policy reload failed", { err }));
    this.listener = listenChannel(this.o.db, POLICY_CHANNEL, { onNotify: reload, onListening: reload }, this.o.log);
    const pollMs = this.o.pollMs ?? 1000;
    if (pollMs > 0) {
      this.pollTimer = setInterval(() => void this.pollOnce(), pollMs);
      this.pollTimer.unref?.();
    }
  }

  /** The compiled policies; synchronous, for the hot path. */
  compiled(): CompiledPolicySet {
    return this.current;
  }

  async list(): Promise<PolicyView[]> {
    const rows = await this.o.db.prisma.policy.findMany({
      orderBy: [{ priority: "desc" }, { name: "asc" }, { id: "asc" }],
    });
    return rows.map(viewOf);
  }

  async get(id: string): Promise<PolicyView> {
    return viewOf(await this.row(id));
  }

  async create(body: unknown, actor: string): Promise<PolicyView> {
    const input = parsePolicyInput(body);
    // The policy and its POLICY_CREATED audit row commit together, or neither does.
    const row = await this.o.audit.apply({
      change: async (tx) => {
        try {
          return await tx.policy.create({ data: dataOf(input) });
        } catch (err) {
          throw conflictOr(err, input.name);
        }
      },
      event: (row) => auditEvent("POLICY_CREATED", actor, row),
    });
    await this.changed(row.id);
    return viewOf(row);
  }

  /** Merges the patch, validates the result whole, and bumps `version`. */
  async update(id: string, patch: unknown, actor: string): Promise<PolicyView> {
    for (let attempt = 0; ; attempt++) {
      const before = await this.row(id);
      const input = applyPolicyPatch(fieldsOf(before), patch);
      let row: Policy;
      try {
        row = await this.o.audit.apply({
          change: async (tx) => {
            try {
              // Compare-and-set on version: a concurrent change makes this miss, and we merge again.
              return await tx.policy.update({
                where: { id, version: before.version },
                data: { ...dataOf(input), description: input.description ?? null, version: { increment: 1 } },
              });
            } catch (err) {
              if (isNotFound(err)) throw new ChangedConcurrently();
              throw conflictOr(err, input.name);
            }
          },
          event: (row) => auditEvent("POLICY_UPDATED", actor, row, before.version),
        });
      } catch (err) {
        if (err instanceof ChangedConcurrently && attempt < 3) continue;
        if (err instanceof ChangedConcurrently) throw new ConflictError("the policy changed concurrently; retry");
        throw err;
      }
      await this.changed(id);
      return viewOf(row);
    }
  }

  async remove(id: string, actor: string): Promise<void> {
    await this.o.audit.apply({
      change: async (tx) => {
        const rows = await tx.$queryRaw<Policy[]>`DELETE FROM policies WHERE id = ${id}::uuid RETURNING *`;
        if (!rows[0]) throw new NotFoundError("policy");
        return rows[0];
      },
      event: (row) => auditEvent("POLICY_DELETED", actor, row),
    });
    await this.changed(id);
  }

  /**
   * Reloads everything. Concurrent calls are fine: a load is applied unless one that started
   * later has already been applied (a later start sees at least the same commits). So when this
   * resolves, the compiled set is at least as new as the database when it was called — a load
   * superseded by one still in flight (e.g. a NOTIFY's) must not let a change return before the
   * change is compiled.
   */
  async reload(): Promise<void> {
    const generation = ++this.loadGeneration;
    const [rows, stamp] = await Promise.all([this.o.db.prisma.policy.findMany(), this.readStamp()]);
    if (generation < this.appliedGeneration) return;
    this.appliedGeneration = generation;
    const records = rows.map((r) => this.toRecord(r));
    this.current = compilePolicies(records);
    this.stamp = stamp;
  }

  async close(): Promise<void> {
    if (this.pollTimer) clearInterval(this.pollTimer);
    const l = this.listener;
    this.listener = undefined;
    await l?.close();
  }

  private async row(id: string): Promise<Policy> {
    const row = await this.o.db.prisma.policy.findUnique({ where: { id } });
    if (!row) throw new NotFoundError("policy");
    return row;
  }

  /** A row that no longer validates still compiles: to a policy that fails closed. */
  private toRecord(row: Policy): PolicyRecord {
    try {
      return parsePolicyRecord({ ...fieldsOf(row), id: row.id, version: row.version });
    } catch (err) {
      this.o.log.warn("stored policy is invalid; it will fail closed", { policyId: row.id, err });
      return { ...fieldsOf(row), id: row.id, version: row.version } as unknown as PolicyRecord;
    }
  }

  /** The change is committed and audited by now: a failed reload must not fail the request. */
  private async changed(id: string): Promise<void> {
    await this.reload().catch((err) =>
      this.o.log.warn("policy reload after a change failed; the poll will retry", { err }),
    );
    await notifyChannel(this.o.db, POLICY_CHANNEL, id, this.o.log);
  }

  // Count and version sum change on every create, update and delete (versions only grow).
  private async readStamp(): Promise<string> {
    const r = await this.o.db.prisma.$queryRaw<{ n: bigint; v: bigint | null; u: Date | null }[]>`
      SELECT count(*) AS n, sum("version")::bigint AS v, max("updatedAt") AS u FROM policies`;
    const s = r[0];
    return `${s?.n ?? 0}:${s?.v ?? 0}:${s?.u?.getTime() ?? 0}`;
  }

  private async pollOnce(): Promise<void> {
    try {
      if ((await this.readStamp()) !== this.stamp) await this.reload();
    } catch (err) {
      this.o.log.warn("policy version poll failed; keeping the cached policies", { err });
    }
  }
}

/** The compare-and-set of an update missed: re-read and merge again. */
class ChangedConcurrently extends Error {}

function fieldsOf(row: Policy): PolicyFields {
  return {
    name: row.name,
    type: row.type as PolicyType,
    priority: row.priority,
    enabled: row.enabled,
    scope: row.scope,
    config: row.config,
    description: row.description,
  };
}

function dataOf(input: PolicyInput) {
  return {
    name: input.name,
    type: input.type,
    priority: input.priority,
    enabled: input.enabled,
    scope: input.scope as object,
    config: input.config as object,
    description: input.description ?? null,
  };
}

export function viewOf(row: Policy): PolicyView {
  return {
    id: row.id,
    name: row.name,
    type: row.type,
    priority: row.priority,
    enabled: row.enabled,
    scope: row.scope,
    config: row.config,
    description: row.description,
    version: row.version,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

function auditEvent(
  eventType: "POLICY_CREATED" | "POLICY_UPDATED" | "POLICY_DELETED",
  actor: string,
  row: Policy,
  previousVersion?: number,
) {
  return {
    eventType,
    actor,
    target: `policy:${row.id}`,
    success: true,
    details: {
      name: row.name,
      type: row.type,
      version: row.version,
      ...(previousVersion === undefined ? {} : { previousVersion }),
      enabled: row.enabled,
      priority: row.priority,
      scope: row.scope,
      config: row.config,
    },
  };
}

function prismaCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : undefined;
}

function isNotFound(err: unknown): boolean {
  return prismaCode(err) === "P2025";
}

function conflictOr(err: unknown, name: string): unknown {
  return prismaCode(err) === "P2002" ? new ConflictError(`a policy named "${name}" already exists`) : err;
}
