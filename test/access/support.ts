/**
 * Test wiring for the access services: the real runtime (audit writer, key service) over a real
 * test database, with a controllable clock and an audit switch for fail-closed paths.
 */
import type { AuditedChange, AuditEvent, AuditReceipt, AuditSink, AuditWrite } from "../../src/audit/types.ts";
import type { Database } from "../../src/db/database.ts";
import { ServiceUnavailableError } from "../../src/errors.ts";
import { createAccessServices, type AccessServices } from "../../src/access/index.ts";
import { createApp, type App } from "../../src/app.ts";
import { createRuntime, type Runtime } from "../../src/runtime.ts";
import type { AuditWriter } from "../../src/audit/writer.ts";
import type { KeyVersion } from "../../src/keys/types.ts";
import { createLogger } from "../../src/log.ts";
import { testConfig } from "../support/app.ts";
import type { Principal, Role } from "../../src/access/principal.ts";

export class TestClock {
  constructor(public t = Date.UTC(2026, 2, 10, 12, 0, 0)) {}
  now = () => this.t;
  advance(ms: number) {
    this.t += ms;
  }
}

/**
 * The real audit writer, plus a switch that makes `record` reject before writing (fault
 * injection for the fail-closed paths) and the list of events it has made durable.
 */
export class RecordingAuditSink implements AuditSink {
  events: AuditEvent[] = [];
  failing = false;
  constructor(readonly writer: AuditWriter) {}

  async record(write: AuditWrite | AuditEvent): Promise<AuditReceipt> {
    if (this.failing) throw new ServiceUnavailableError("audit log unavailable (test)");
    const receipt = await this.writer.record(write);
    this.events.push("event" in write ? write.event : write);
    return receipt;
  }

  async apply<T>(c: AuditedChange<T>): Promise<T> {
    if (this.failing) throw new ServiceUnavailableError("audit log unavailable (test)");
    let event: AuditEvent | undefined;
    const result = await this.writer.apply({ change: c.change, event: (r) => (event = c.event(r)) });
    this.events.push(event!);
    return result;
  }
}

export interface AccessHarness {
  app: App;
  access: AccessServices;
  audit: RecordingAuditSink;
  runtime: Runtime;
  /** The active key version (version 1 on a fresh database). */
  keyVersion: KeyVersion;
  clock: TestClock;
  /** Base URL when started with `listen: true` (a real loopback port). */
  url: string;
  /** Creates a requester with one key of these roles; returns the key string and principal data. */
  makeKey(
    roles: Role[],
    opts?: { requesterId?: string; department?: string; expiresAt?: number; publicKeyJwk?: Record<string, string> },
  ): Promise<{ apiKey: string; keyId: string; requesterUuid: string; requesterId: string }>;
  close(): Promise<void>;
}

let n = 0;

/**
 * The real runtime (database, audit writer, key service) with the access services built again
 * over a test clock and a switchable audit sink. The runtime's BOOTSTRAP_ADMIN_KEY is off, so
 * admin keys exist only where a test makes them.
 */
export async function accessHarness(
  db: Database,
  opts: { env?: Record<string, string>; listen?: boolean; policyPollMs?: number; apiKeyCacheTtlMs?: number } = {},
): Promise<AccessHarness> {
  const config = { ...testConfig(opts.env), bootstrapAdminKey: undefined };
  const log = createLogger(config.logLevel);
  const clock = new TestClock();
  const runtime = await createRuntime(config, log, { db, migrate: false, ownsDb: false });
  const audit = new RecordingAuditSink(runtime.audit);
  const access = await createAccessServices({
    config,
    db,
    audit,
    keys: runtime.keys,
    clock,
    log,
    policyPollMs: opts.policyPollMs ?? 200,
    ...(opts.apiKeyCacheTtlMs !== undefined ? { apiKeyCacheTtlMs: opts.apiKeyCacheTtlMs } : {}),
  });
  const app = createApp({ ...runtime.appDeps(), access });
  const system = "test-admin";
  const server = opts.listen ? Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch }) : undefined;
  return {
    app,
    url: server ? `http://127.0.0.1:${server.port}` : "http://in-process",
    access,
    audit,
    runtime,
    keyVersion: await runtime.keys.active(),
    clock,
    async makeKey(roles, o = {}) {
      const requesterId = o.requesterId ?? `req-${process.pid}-${++n}-${Math.random().toString(36).slice(2, 7)}`;
      const r = await access.requesters.create(
        {
          requesterId,
          name: requesterId,
          ...(o.department ? { department: o.department } : {}),
          ...(o.publicKeyJwk ? { publicKeyJwk: o.publicKeyJwk } : {}),
        },
        system,
      );
      const k = await access.apiKeys.create(r.id, { roles, expiresAt: o.expiresAt ?? null }, system);
      return { apiKey: k.apiKey, keyId: k.keyId, requesterUuid: r.id, requesterId };
    },
    async close() {
      await server?.stop(true);
      await access.close();
      await runtime.close();
    },
  };
}

export function bearer(apiKey: string, init: RequestInit = {}): RequestInit {
  return {
    ...init,
    headers: {
      ...(init.headers as Record<string, string>),
      authorization: `Bearer ${apiKey}`,
      "content-type": "application/json",
    },
  };
}

export type { Principal };
