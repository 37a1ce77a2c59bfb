/**
 * Prometheus metrics (prom-client, one registry per runtime): counters and histograms fed by small
 * hooks (HTTP middleware, the audit writer's per-batch callback), and gauges read from the
 * database when scraped. Labels are bounded sets only: route templates, methods, status codes,
 * outcomes and reason codes — never a key, token, user id or requester.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { AuditEvent } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import type { Database } from "../db/database.ts";
import { HttpRequestMetrics } from "./http-requests.ts";

/** What the scrape-time gauges read; bound once the runtime has built them. */
export interface MetricsSources {
  db: Database;
  clock: Clock;
  /** Key versions with their status and the records each still protects. */
  versions(): Promise<ReadonlyArray<{ version: number; status: string; records: number }>>;
}

export interface Metrics {
  readonly contentType: string;
  /** One finished HTTP request: route template (or "unmatched"), method, status, seconds. */
  observeRequest(route: string, method: string, status: number, seconds: number): void;
  /** The audit writer's per-batch hook: batch size, commit latency, and the decisions and refreshes it made durable. */
  observeAuditBatch(b: { events: readonly AuditEvent[]; seconds: number; ok: boolean }): void;
  bind(sources: MetricsSources): void;
  /** The exposition text (Prometheus text format 0.0.4). */
  render(): Promise<string>;
}

const CODE = /^[A-Z][A-Z0-9_]{0,47}$/;
// Refresh failure reasons worth a label (RFC 6749 §5.2 errors and our own); anything else a provider says is "other".
const PROVIDER_REASON =
  /^(timeout|network|malformed-response|lock-timeout|oauth_error|http_[1-5][0-9][0-9]|invalid_(grant|client|request|scope)|unauthorized_client|unsupported_grant_type)$/;

/**
 * A counter by (outcome, reason) bumped once per decision, i.e. per request: prom-client hashes the
 * labels on every `inc`, so counts wait in a map (same first-seen order) and are added when scraped.
 */
function outcomeCounter(registry: Registry, o: { name: string; help: string }) {
  const pending = new Map<string, { outcome: string; reason: string; n: number }>();
  new Counter({
    ...o,
    labelNames: ["outcome", "reason"] as const,
    registers: [registry],
    collect() {
      for (const e of pending.values()) {
        if (e.n === 0) continue;
        this.inc({ outcome: e.outcome, reason: e.reason }, e.n);
        e.n = 0;
      }
    },
  });
  return {
    inc({ outcome, reason }: { outcome: string; reason: string }) {
      const key = `${outcome}\u0000${reason}`;
      let e = pending.get(key);
      if (!e) {
        e = { outcome, reason, n: 0 };
        pending.set(key, e);
      }
      e.n++;
    },
  };
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  let sources: MetricsSources | undefined;

  const http = new HttpRequestMetrics(registry);
  const decisions = outcomeCounter(registry, {
    name: "chronokms_access_decisions_total",
    help: "Access decisions made durable, by outcome and reason code",
  });
  const refreshes = outcomeCounter(registry, {
    name: "chronokms_token_refreshes_total",
    help: "OAuth token refreshes by outcome",
  });
  const batchSize = new Histogram({
    name: "chronokms_audit_batch_events",
    help: "Events per audit group-commit transaction",
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
    registers: [registry],
  });
  const commitLatency = new Histogram({
    name: "chronokms_audit_commit_duration_seconds",
    help: "Audit group-commit write latency (build, transaction, commit) by result",
    labelNames: ["result"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const commitOk = commitLatency.labels("ok");
  const commitFailed = commitLatency.labels("failed");

  new Gauge({
    name: "chronokms_audit_checkpoint_age_seconds",
    help: "Seconds since the newest signed audit checkpoint (NaN when there is none or the database cannot say)",
    registers: [registry],
    async collect() {
      if (!sources) return this.set(Number.NaN);
      try {
        // "timestamp" is epoch milliseconds (bigint); indexed with "eventType".
        const rows = await sources.db.prisma.$queryRaw<
          { t: string | null }[]
        >`SELECT max("timestamp")::text AS t FROM "audit_logs" WHERE "eventType" = 'AUDIT_CHECKPOINT'`;
        const t = rows[0]?.t;
        this.set(t ? Math.max(0, (sources.clock.now() - Number(t)) / 1000) : Number.NaN);
      } catch {
        this.set(Number.NaN);
      }
    },
  });

  // Key versions and pending records come from one read per scrape, shared by both gauges.
  let versionsRead: Promise<ReadonlyArray<{ version: number; status: string; records: number }> | null> | undefined;
  const readVersions = () =>
    (versionsRead ??= (async () => {
      try {
        return sources ? await sources.versions() : null;
      } catch {
        return null;
      }
    })());
  new Gauge({
    name: "chronokms_key_versions",
    help: "Master key versions by status",
    labelNames: ["status"] as const,
    registers: [registry],
    async collect() {
      const vs = await readVersions();
      this.reset();
      if (!vs) return;
      for (const status of ["active", "decrypt-only", "retired"])
        this.set({ status }, vs.filter((v) => v.status === status).length);
    },
  });
  new Gauge({
    name: "chronokms_records_pending_reencryption",
    help: "Records still sealed under a master key version other than the active one",
    registers: [registry],
    async collect() {
      const vs = await readVersions();
      if (!vs) return this.set(Number.NaN);
      const active = vs.find((v) => v.status === "active")?.version;
      this.set(vs.reduce((n, v) => (v.version === active ? n : n + v.records), 0));
    },
  });
  new Gauge({
    name: "chronokms_db_pool_connections",
    help: "Database connections by state (PostgreSQL pool; the embedded database is one in-process connection)",
    labelNames: ["state"] as const,
    registers: [registry],
    collect() {
      this.reset();
      const pool = sources?.db.pool;
      if (pool) {
        this.set({ state: "total" }, pool.totalCount);
        this.set({ state: "idle" }, pool.idleCount);
        this.set({ state: "waiting" }, pool.waitingCount);
        this.set({ state: "max" }, pool.options.max ?? 10);
      } else if (sources) {
        for (const [state, n] of [
          ["total", 1],
          ["idle", 0],
          ["waiting", 0],
          ["max", 1],
        ] as const)
          this.set({ state }, n);
      }
    },
  });

  return {
    contentType: registry.contentType,
    observeRequest(route, method, status, seconds) {
      http.observe(route, method, status, seconds);
    },
    observeAuditBatch({ events, seconds, ok }) {
      (ok ? commitOk : commitFailed).observe(seconds);
      if (!ok) return;
      batchSize.observe(events.length);
      for (const e of events) {
        switch (e.eventType) {
          case "ACCESS_GRANTED":
            decisions.inc({ outcome: "granted", reason: "GRANTED" });
            break;
          case "ACCESS_DENIED": {
            const code = e.details?.reasonCode;
            decisions.inc({ outcome: "denied", reason: typeof code === "string" && CODE.test(code) ? code : "OTHER" });
            break;
          }
          case "TOKEN_REFRESHED":
            refreshes.inc({ outcome: "refreshed", reason: "ok" });
            break;
          case "TOKEN_REFRESH_FAILED": {
            const reason = e.details?.reason;
            refreshes.inc({
              outcome: e.details?.permanent === true ? "needs-reauth" : "failed",
              reason: typeof reason === "string" && PROVIDER_REASON.test(reason) ? reason : "other",
            });
            break;
          }
        }
      }
    },
    bind(s) {
      sources = s;
    },
    async render() {
      versionsRead = undefined;
      try {
        return await registry.metrics();
      } finally {
        versionsRead = undefined;
      }
    },
  };
}
