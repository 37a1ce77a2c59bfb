/**
 * Demo data for `bun run db:seed`: default policies, three demo requesters with one API key each,
 * and a few demo token records, created through the same services the API uses (so every change
 * is validated and audited). Idempotent: everything is looked up by name first, and a run that
 * finds everything in place writes nothing at all (no row, no audit event, no checkpoint).
 */
import type { Runtime } from "../../src/runtime.ts";
import type { Principal, Role } from "../../src/access/principal.ts";

export const SEED_ACTOR = "script:db-seed";

export interface DemoRequester {
  requesterId: string;
  name: string;
  department?: string;
  roles: Role[];
  /** Name of the environment variable the printed key is exported as. */
  envVar: string;
}

export const DEMO_REQUESTERS: DemoRequester[] = [
  {
    requesterId: "demo-admin",
    name: "Demo administrator",
    department: "platform",
    roles: ["admin"],
    envVar: "CHRONOKMS_ADMIN_KEY",
  },
  {
    requesterId: "demo-writer",
    name: "Demo data source / OAuth callback",
    department: "platform",
    roles: ["writer"],
    envVar: "CHRONOKMS_WRITER_KEY",
  },
  {
    requesterId: "demo-reader",
    name: "Demo analyst / token worker",
    department: "analytics",
    roles: ["reader"],
    envVar: "CHRONOKMS_READER_KEY",
  },
];

export interface DemoPolicy {
  body: {
    name: string;
    type: string;
    priority?: number;
    enabled: boolean;
    scope?: Record<string, unknown>;
    config: Record<string, unknown>;
    description: string;
  };
  /** What the seed output says about it. */
  note: string;
}

export const DEMO_POLICIES: DemoPolicy[] = [
  {
    body: {
      name: "demo-whitelist",
      type: "whitelist",
      enabled: true,
      config: { requesters: ["demo-reader"] },
      description: "Admits the demo reader (deny by default: no whitelist, no access)",
    },
    note: "admits demo-reader",
  },
  {
    body: {
      name: "demo-business-hours",
      type: "time-based",
      enabled: false,
      config: { timezone: "UTC", days: ["mon", "tue", "wed", "thu", "fri"], hours: { from: "09:00", to: "17:00" } },
      description: "Requests only Mon–Fri 09:00–17:00 UTC. Disabled so the demo works at any hour.",
    },
    note: 'so the demo works at any hour; enable with PATCH /v1/policies/{id} {"enabled":true}',
  },
  {
    body: {
      name: "demo-max-24h",
      type: "duration-limit",
      enabled: true,
      config: { maxSeconds: 86_400 },
      description: "One request covers at most 24 hours of data",
    },
    note: "one request covers at most 24 hours (the demo asks for one)",
  },
  {
    body: {
      name: "demo-purpose-required",
      type: "purpose",
      enabled: true,
      config: { minLength: 3 },
      description: "Every request states why (at least 3 characters)",
    },
    note: 'every request must state a purpose ("purpose": "…" in the body, ?purpose= on token reads)',
  },
];

export interface DemoToken {
  integration: string;
  userId: string;
  body: { accessToken: string; refreshToken?: string; expiresInSeconds?: number; scope?: string; tokenType?: string };
}

/** Demo token values: obviously not real, never valid anywhere. */
export const DEMO_TOKENS: DemoToken[] = [
  {
    integration: "gmail",
    userId: "demo-user-1",
    body: {
      accessToken: "demo-gmail-access-token",
      refreshToken: "demo-gmail-refresh-token",
      expiresInSeconds: 3600,
      scope: "https://www.googleapis.com/auth/gmail.readonly",
      tokenType: "Bearer",
    },
  },
  {
    integration: "github",
    userId: "demo-user-1",
    body: { accessToken: "demo-github-access-token", scope: "repo:status", tokenType: "bearer" },
  },
  {
    integration: "outlook",
    userId: "demo-user-2",
    body: {
      accessToken: "demo-outlook-access-token",
      refreshToken: "demo-outlook-refresh-token",
      expiresInSeconds: 3600,
      scope: "Mail.Read",
      tokenType: "Bearer",
    },
  },
];

export interface SeedReport {
  masterKey: { version: number; created: boolean };
  requesters: Array<{
    requesterId: string;
    id: string;
    created: boolean;
    roles: Role[];
    envVar: string;
    apiKey: string | null;
  }>;
  policies: Array<{ name: string; id: string; type: string; enabled: boolean; created: boolean; note: string }>;
  tokens: Array<{ integration: string; userId: string; created: boolean }>;
  /** Whether this run wrote anything. */
  changed: boolean;
}

export async function seedDemo(runtime: Runtime, startedAt: number): Promise<SeedReport> {
  const { access, keys, tokens, db, clock } = runtime;
  const active = await keys.active();
  const versions = await keys.versions();
  const created = versions.length === 1 && Date.parse(versions[0]!.createdAt) >= startedAt;
  const report: SeedReport = {
    masterKey: { version: active.version, created },
    requesters: [],
    policies: [],
    tokens: [],
    changed: created,
  };

  for (const r of DEMO_REQUESTERS) {
    let row = await access.requesters.findByRequesterId(r.requesterId);
    const wasCreated = row === null;
    row ??= await access.requesters.create(
      { requesterId: r.requesterId, name: r.name, ...(r.department ? { department: r.department } : {}) },
      SEED_ACTOR,
    );
    // A demo requester gets a key only if it has none (revoked ones count): never a second one.
    const existing = await access.apiKeys.listFor(row.id);
    let apiKey: string | null = null;
    if (existing.length === 0)
      apiKey = (await access.apiKeys.create(row.id, { roles: r.roles, name: "db:seed" }, SEED_ACTOR)).apiKey;
    report.changed ||= wasCreated || apiKey !== null;
    report.requesters.push({
      requesterId: r.requesterId,
      id: row.id,
      created: wasCreated,
      roles: r.roles,
      envVar: r.envVar,
      apiKey,
    });
  }

  const policies = await access.policies.list();
  for (const p of DEMO_POLICIES) {
    let view = policies.find((x) => x.name === p.body.name);
    const wasCreated = view === undefined;
    view ??= await access.policies.create(p.body, SEED_ACTOR);
    report.changed ||= wasCreated;
    report.policies.push({
      name: view.name,
      id: view.id,
      type: view.type,
      enabled: view.enabled,
      created: wasCreated,
      note: p.note,
    });
  }

  const writer = report.requesters.find((r) => r.requesterId === "demo-writer")!;
  const principal: Principal = {
    id: writer.id,
    requesterId: SEED_ACTOR,
    department: null,
    keyId: "",
    roles: ["writer"],
    publicKeyJwk: null,
  };
  for (const t of DEMO_TOKENS) {
    const found = await db.prisma.oAuthToken.findUnique({
      where: { userId_integration: { userId: t.userId, integration: t.integration } },
      select: { id: true },
    });
    if (!found) {
      const { expiresInSeconds, ...body } = t.body;
      await tokens.store(
        principal,
        { integration: t.integration, userId: t.userId },
        { ...body, ...(expiresInSeconds ? { expiresAt: clock.now() + expiresInSeconds * 1000 } : {}) },
        { ipAddress: null, userAgent: "chronokms db:seed" },
      );
    }
    report.changed ||= !found;
    report.tokens.push({ integration: t.integration, userId: t.userId, created: !found });
  }
  return report;
}

/** The human-readable report; API keys appear only in the run that created them. */
export function formatSeedReport(report: SeedReport, baseUrl: string): string {
  const out: string[] = [];
  const state = (created: boolean) => (created ? "created" : "exists ");
  out.push(
    `master key: version ${report.masterKey.version} ${report.masterKey.created ? "created" : "already present"}`,
  );
  out.push("", "requesters:");
  for (const r of report.requesters)
    out.push(`  ${state(r.created)}  ${r.requesterId.padEnd(12)} roles: ${r.roles.join(", ").padEnd(7)} id: ${r.id}`);
  out.push("", "policies:");
  for (const p of report.policies)
    out.push(
      `  ${state(p.created)}  ${p.name.padEnd(22)} ${p.type.padEnd(15)} ${p.enabled ? "enabled " : "DISABLED"}  ${p.note}`,
    );
  out.push("", "demo tokens (fake values):");
  for (const t of report.tokens) out.push(`  ${state(t.created)}  ${t.integration}/${t.userId}`);
  const fresh = report.requesters.filter((r) => r.apiKey !== null);
  const old = report.requesters.filter((r) => r.apiKey === null);
  out.push("");
  if (fresh.length > 0) {
    out.push(
      "API keys, shown this once (only their hashes are stored). Copy them now, or paste these lines into your shell:",
      "",
    );
    out.push(`export CHRONOKMS_URL=${baseUrl}`);
    for (const r of fresh) out.push(`export ${r.envVar}=${r.apiKey}`);
    out.push("");
  }
  if (old.length > 0) {
    out.push(
      `API keys already exist for ${old.map((r) => r.requesterId).join(", ")} and cannot be shown again (only their hashes are stored).`,
      "To issue a new one, as an admin:",
      `  curl -s -X POST ${baseUrl}/v1/requesters/<id>/api-keys -H "Authorization: Bearer $CHRONOKMS_ADMIN_KEY" -H 'Content-Type: application/json' -d '{"roles":["reader"]}'`,
    );
  }
  out.push(report.changed ? "seeded." : "nothing to do: the demo data is already in place (no row changed).");
  return out.join("\n");
}
