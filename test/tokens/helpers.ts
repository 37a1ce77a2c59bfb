/** Shared setup for token tests: a real app with a writer, a reader (whitelisted) and an admin key. */
import type { Clock } from "../../src/clock.ts";
import type { Database } from "../../src/db/database.ts";
import type { Resolver } from "../../src/proxy/address.ts";
import { startTestApp, type TestApp } from "../support/app.ts";

export const BOOTSTRAP_KEY = `ckms_tokenstestadmin2_${"b".repeat(42)}A`;

export class ManualClock implements Clock {
  constructor(public t: number) {}
  now() {
    return this.t;
  }
}

export interface TokenTestApp {
  t: TestApp;
  admin: string;
  writer: string;
  reader: string;
  /** A reader no whitelist admits. */
  stranger: string;
  /** Role exporter only, admitted by the same whitelist as the reader. */
  exporter: string;
  call(
    key: string | null,
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<Response>;
  close(): Promise<void>;
}

export async function callApi(
  base: string | TestApp,
  key: string | null,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  const init: RequestInit = {
    method,
    headers: {
      ...(key ? { Authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  };
  return typeof base === "string" ? fetch(`${base}${path}`, init) : base.app.request(path, init);
}

async function json<T>(res: Response, expected: number, what: string): Promise<T> {
  const text = await res.text();
  if (res.status !== expected) throw new Error(`${what}: expected ${expected}, got ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

/** Creates the writer, reader, stranger, exporter and a whitelist admitting the reader and the exporter, all over HTTP. */
export async function provision(base: string | TestApp, admin: string, suffix = "") {
  const mk = async (requesterId: string, roles: string[]) => {
    const r = await json<{ id: string }>(
      await callApi(base, admin, "POST", "/v1/requesters", { requesterId, name: requesterId }),
      201,
      `create ${requesterId}`,
    );
    const k = await json<{ apiKey: string }>(
      await callApi(base, admin, "POST", `/v1/requesters/${r.id}/api-keys`, { roles }),
      201,
      `key for ${requesterId}`,
    );
    return k.apiKey;
  };
  const writer = await mk(`svc-writer${suffix}`, ["writer"]);
  const reader = await mk(`svc-reader${suffix}`, ["reader"]);
  const stranger = await mk(`svc-stranger${suffix}`, ["reader"]);
  const exporter = await mk(`svc-exporter${suffix}`, ["exporter"]);
  await json(
    await callApi(base, admin, "POST", "/v1/policies", {
      name: `readers${suffix}`,
      type: "whitelist",
      config: { requesters: [`svc-reader${suffix}`, `svc-exporter${suffix}`] },
    }),
    201,
    "whitelist",
  );
  return { writer, reader, stranger, exporter };
}

export async function tokenTestApp(
  db: Database,
  opts: { env?: Record<string, string>; clock?: Clock; listen?: boolean; resolve?: Resolver } = {},
): Promise<TokenTestApp> {
  const t = await startTestApp(db, {
    env: { BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY, ...opts.env },
    clock: opts.clock,
    listen: opts.listen,
    ...(opts.resolve ? { resolve: opts.resolve } : {}),
  });
  const keys = await provision(t, BOOTSTRAP_KEY, `-${Math.random().toString(36).slice(2, 8)}`);
  return {
    t,
    admin: BOOTSTRAP_KEY,
    ...keys,
    call: (key, method, path, body, headers) => callApi(t, key, method, path, body, headers),
    close: () => t.close(),
  };
}

/** Every audit row of one event type, oldest first. */
export async function auditRows(db: Database, eventType: string) {
  return db.prisma.auditLog.findMany({ where: { eventType }, orderBy: [{ timestamp: "asc" }, { seq: "asc" }] });
}

/** JSON of database rows (BigInt columns as strings), for "never contains" checks. */
export function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? String(x) : x));
}
