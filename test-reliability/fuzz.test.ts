/**
 * HTTP fuzz over every route of the OpenAPI document: generated requests (wrong types, huge and
 * deep JSON, unknown fields, bad ids and ranges, invalid UTF-8, wrong content types, oversized
 * bodies, header junk) sent with a key of every role and without one, most in-process
 * (`app.request`), the rest over a real port through the production server (Bun's HTTP parser and
 * body limits), a share of those as raw bytes on a socket. Bars: no response ≥ 500, every 4xx in
 * the single error shape, the process still healthy, and no data row written by a rejected request.
 *
 * What a rejected (4xx) request may add, precisely (anything else fails the test):
 * - AUTH_FAILED audit row: only with 401 or 429;
 * - a decision (ACCESS_DENIED audit row + its access_requests row, granted=false): only with 403
 *   from a decision route (POST /v1/access-requests, GET /v1/tokens/{integration}/{userId});
 * - a decision ACCESS_GRANTED + its access_requests row (granted=true): only with 404/409/422 from
 *   a token read (the decision comes first so a denied caller cannot probe for existence), plus
 *   DECRYPT_FAILED with 422 and TOKEN_REFRESH_FAILED with 409;
 * - AUDIT_CHECKPOINT rows at any time (the writer signs its chain head every N rows).
 * HEAD is answered by the GET handler, so a HEAD token read counts as a token read.
 * requesters, api_keys, policies, oauth_tokens and master_keys must be unchanged, row for row
 * (columns a background job legitimately updates are left out: lastUsedAt/lastUsed, and the
 * ciphertext/keyVersion/version of tokens, which a rotation's background rewrap moves).
 *
 * Size: RELIABILITY_FUZZ_RUNS (default 10 000), seed: RELIABILITY_FUZZ_SEED (printed on failure).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { createLogger } from "../src/log.ts";
import { createApp, type App } from "../src/app.ts";
import { startServer, type RunningServer } from "../src/server.ts";
import type { Database } from "../src/db/database.ts";
import { TEST_ADMIN_KEY, testConfig } from "../test/support/app.ts";
import { createEmptyPostgresDatabase, postgresAvailable } from "../test/support/databases.ts";
import { callApi, provision } from "../test/tokens/helpers.ts";
import {
  bodySpec,
  contentTypes,
  headerSafe,
  junkHeaders,
  junkString,
  materialize,
  operationsOf,
  type BodySpec,
  type Operation,
} from "./fuzz-arbitraries.ts";
import { envInt, figure } from "./support.ts";

const RUNS = envInt("RELIABILITY_FUZZ_RUNS", 10_000);
const SEED = envInt("RELIABILITY_FUZZ_SEED", Math.floor(Math.random() * 2 ** 31));
/** A quarter goes over the real port; a fifth of those as raw bytes. */
const PORT_RUNS = Math.round(RUNS * 0.25);
const RAW_RUNS = Math.round(PORT_RUNS * 0.2);
const FETCH_RUNS = PORT_RUNS - RAW_RUNS;
const INPROC_RUNS = RUNS - PORT_RUNS;
const BODY_LIMIT = 64 * 1024;

const TOKEN_READ = "GET /v1/tokens/{integration}/{userId}";
/** Token routes that are decisions like a read (v2): a grant may still end in 404/409/422. */
const TOKEN_DECISIONS = new Set([
  TOKEN_READ,
  "GET /v1/tokens/{integration}/{userId}/status",
  "GET /v1/tokens/{integration}/{userId}/export",
]);
const DECISION_ROUTES = new Set(["POST /v1/access-requests", ...TOKEN_DECISIONS]);

interface FuzzRequest {
  op: Operation;
  method: string;
  url: string;
  keyName: string;
  authorization: string | undefined;
  contentType: string | undefined;
  headers: Array<[string, string]>;
  body: BodySpec;
}

interface Failure {
  kind: string;
  status: number;
  request: string;
  detail?: string;
}

/** Columns a background job may change are dropped before hashing a table. */
const DATA_SQL = `SELECT
  (SELECT count(*)::text || ':' || coalesce(md5(string_agg(to_jsonb(t)::text, ',' ORDER BY t.id)), '') FROM requesters t) AS requesters,
  (SELECT count(*)::text || ':' || coalesce(md5(string_agg((to_jsonb(t) - 'lastUsedAt')::text, ',' ORDER BY t.id)), '') FROM api_keys t) AS api_keys,
  (SELECT count(*)::text || ':' || coalesce(md5(string_agg(to_jsonb(t)::text, ',' ORDER BY t.id)), '') FROM policies t) AS policies,
  (SELECT count(*)::text || ':' || coalesce(md5(string_agg((to_jsonb(t) - 'lastUsed' - 'accessToken' - 'refreshToken' - 'keyVersion' - 'version' - 'updatedAt')::text, ',' ORDER BY t.id)), '') FROM oauth_tokens t) AS oauth_tokens,
  (SELECT count(*)::text || ':' || coalesce(md5(string_agg(to_jsonb(t)::text, ',' ORDER BY t.id)), '') FROM master_keys t) AS master_keys,
  (SELECT count(*)::int FROM access_requests WHERE granted) AS granted,
  (SELECT count(*)::int FROM access_requests WHERE NOT granted) AS denied`;

type DataSnapshot = {
  requesters: string;
  api_keys: string;
  policies: string;
  oauth_tokens: string;
  master_keys: string;
  granted: number;
  denied: number;
};

class RowWatch {
  private data!: DataSnapshot;
  private readonly seen = new Set<string>();
  private since = Date.now() - 60_000;
  constructor(private readonly db: Database) {}

  async init() {
    this.data = await this.snapshot();
    await this.newAuditRows();
  }

  private async snapshot(): Promise<DataSnapshot> {
    const [row] = await this.db.prisma.$queryRawUnsafe<DataSnapshot[]>(DATA_SQL);
    return row!;
  }

  /** Audit rows not seen before (a window on the indexed timestamp keeps the query small). */
  private async newAuditRows(): Promise<string[]> {
    const rows = await this.db.prisma.$queryRawUnsafe<Array<{ id: string; eventType: string; timestamp: bigint }>>(
      `SELECT id::text AS id, "eventType", "timestamp" FROM audit_logs WHERE "timestamp" >= $1`,
      BigInt(this.since),
    );
    const fresh: string[] = [];
    for (const r of rows) {
      if (this.seen.has(r.id)) continue;
      this.seen.add(r.id);
      fresh.push(r.eventType);
    }
    this.since = Date.now() - 10_000;
    return fresh;
  }

  /** After one request: what it wrote that a rejection may not write (empty = fine). */
  async check(route: string, status: number): Promise<string[]> {
    const [now, audit] = [await this.snapshot(), await this.newAuditRows()];
    const before = this.data;
    this.data = now;
    if (status < 400) return [];
    const problems: string[] = [];
    for (const t of ["requesters", "api_keys", "policies", "oauth_tokens", "master_keys"] as const) {
      if (now[t] !== before[t])
        problems.push(`${t} changed (${before[t].split(":")[0]} → ${now[t].split(":")[0]} rows)`);
    }
    const dGranted = now.granted - before.granted;
    const dDenied = now.denied - before.denied;
    const counts = new Map<string, number>();
    for (const e of audit) counts.set(e, (counts.get(e) ?? 0) + 1);
    const take = (e: string) => {
      const n = counts.get(e) ?? 0;
      counts.delete(e);
      return n;
    };
    take("AUDIT_CHECKPOINT");
    const authFailed = take("AUTH_FAILED");
    if (authFailed > 0 && !(status === 401 || status === 429)) problems.push(`AUTH_FAILED row with ${status}`);
    if (authFailed > 1) problems.push(`${authFailed} AUTH_FAILED rows for one request`);
    const deniedRows = take("ACCESS_DENIED");
    const grantedRows = take("ACCESS_GRANTED");
    const decision = DECISION_ROUTES.has(route);
    if (deniedRows > 0 && !(decision && status === 403 && deniedRows === 1))
      problems.push(`${deniedRows} ACCESS_DENIED row(s) with ${status} on ${route}`);
    if (grantedRows > 0 && !(TOKEN_DECISIONS.has(route) && [404, 409, 422].includes(status) && grantedRows === 1))
      problems.push(`${grantedRows} ACCESS_GRANTED row(s) with ${status} on ${route}`);
    if (dDenied !== deniedRows)
      problems.push(`access_requests denied +${dDenied} but ${deniedRows} ACCESS_DENIED row(s)`);
    if (dGranted !== grantedRows)
      problems.push(`access_requests granted +${dGranted} but ${grantedRows} ACCESS_GRANTED row(s)`);
    if (take("DECRYPT_FAILED") > 0 && !(TOKEN_DECISIONS.has(route) && status === 422))
      problems.push(`DECRYPT_FAILED with ${status}`);
    if (take("TOKEN_REFRESH_FAILED") > 0 && !(route === TOKEN_READ && status === 409))
      problems.push(`TOKEN_REFRESH_FAILED with ${status}`);
    for (const [e, n] of counts) problems.push(`${n} ${e} row(s) written by a ${status}`);
    return problems;
  }
}

/** encodeURIComponent refuses lone surrogates; those travel as U+FFFD (raw socket runs send broken bytes). */
const uri = (s: string) => encodeURIComponent((s as string & { toWellFormed(): string }).toWellFormed());

function describeRequest(r: FuzzRequest, raw?: Uint8Array): string {
  const body = raw
    ? `raw ${raw.byteLength} bytes: ${JSON.stringify(new TextDecoder().decode(raw.slice(0, 300)))}`
    : bodyDescription(r.body);
  return `${r.method} ${r.url.slice(0, 300)} key=${r.keyName} ct=${JSON.stringify(r.contentType)} headers=${JSON.stringify(r.headers).slice(0, 300)} body=${body}`;
}

function bodyDescription(b: BodySpec): string {
  switch (b.kind) {
    case "json":
      return (JSON.stringify(b.value) ?? "undefined").slice(0, 500);
    case "text":
      return JSON.stringify(b.text.slice(0, 300));
    case "bytes":
      return `bytes[${b.bytes.byteLength}] ${Buffer.from(b.bytes.slice(0, 100)).toString("hex")}`;
    case "deep":
      return `deep ${b.shape} × ${b.depth}`;
    case "huge":
      return `huge ${b.shape} ${b.bytes} bytes`;
    case "none":
      return "none";
  }
}

describe("fuzz: every route, every role", () => {
  let pg: { url: string; drop(): Promise<void> } | undefined;
  let server: RunningServer;
  let app: App;
  let db: Database;
  let watch: RowWatch;
  let ops: Operation[];
  const keys: Record<string, string | null> = {};
  const pool = {
    requesterIds: [] as string[],
    keyIds: [] as string[],
    policyIds: [] as string[],
    integrations: ["gmail", "github", "slack"],
    userIds: ["alice", "bob"],
  };

  beforeAll(async () => {
    pg = postgresAvailable ? await createEmptyPostgresDatabase() : undefined;
    const config = testConfig({
      DATABASE_URL: pg?.url ?? "memory://",
      PORT: "0",
      AUTH_FAILURES_PER_MINUTE: "100000",
      BODY_LIMIT_BYTES: String(BODY_LIMIT),
    });
    server = await startServer(config, createLogger(config.logLevel));
    db = server.runtime.db;
    app = createApp(server.runtime.appDeps());

    const base = server.url;
    const roles = await provision(base, TEST_ADMIN_KEY, "-fuzz");
    keys.admin = TEST_ADMIN_KEY;
    keys.writer = roles.writer;
    keys.reader = roles.reader;
    keys.stranger = roles.stranger;
    keys.none = null;
    // A key with every role, and victims the fuzzer may legitimately change or delete (never the
    // fuzzer's own principals, so it cannot lock itself out).
    const mk = async (requesterId: string, rolesOf: string[]) => {
      const r = (await (
        await callApi(base, TEST_ADMIN_KEY, "POST", "/v1/requesters", { requesterId, name: requesterId })
      ).json()) as { id: string };
      const k = (await (
        await callApi(base, TEST_ADMIN_KEY, "POST", `/v1/requesters/${r.id}/api-keys`, { roles: rolesOf })
      ).json()) as { apiKey: string; keyId: string };
      return { id: r.id, ...k };
    };
    const all = await mk("fuzz-all-roles", ["admin", "writer", "reader"]);
    keys.all = all.apiKey;
    await callApi(base, TEST_ADMIN_KEY, "POST", "/v1/policies", {
      name: "fuzz-all",
      type: "whitelist",
      config: { requesters: ["fuzz-all-roles"] },
    });
    for (const v of ["victim-a", "victim-b"]) {
      const r = await mk(v, ["reader"]);
      pool.requesterIds.push(r.id);
      pool.keyIds.push(r.keyId);
      const p = (await (
        await callApi(base, TEST_ADMIN_KEY, "POST", "/v1/policies", {
          name: `victim-${v}`,
          type: "whitelist",
          enabled: false,
          config: { requesters: [v] },
        })
      ).json()) as { id: string };
      pool.policyIds.push(p.id);
    }
    for (const [i, u] of [
      ["gmail", "alice"],
      ["github", "bob"],
    ] as const) {
      const res = await callApi(base, roles.writer, "PUT", `/v1/tokens/${i}/${u}`, {
        accessToken: `tok-${u}`,
        refreshToken: `ref-${u}`,
        expiresAt: Date.now() + 86_400_000,
      });
      expect(res.status).toBe(201);
    }
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as Parameters<typeof operationsOf>[0];
    ops = operationsOf(doc);
    watch = new RowWatch(db);
    await watch.init();
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await pg?.drop();
  });

  function requestArb(): fc.Arbitrary<FuzzRequest> {
    const idFor = (name: string): fc.Arbitrary<string> => {
      const real =
        name === "keyId"
          ? pool.keyIds
          : name === "integration"
            ? pool.integrations
            : name === "userId"
              ? pool.userIds
              : name === "slice"
                ? [String(Math.floor(Date.now() / 3_600_000))]
                : [...pool.requesterIds, ...pool.policyIds];
      return fc.oneof(
        { arbitrary: fc.constantFrom(...real), weight: 3 },
        { arbitrary: fc.stringMatching(/^[A-Za-z0-9._:@+-]{1,24}$/), weight: 1 },
        { arbitrary: junkString, weight: 3 },
      );
    };
    const encodePath = (v: string, raw: boolean) => (raw ? v.replace(/[/?#\s]/g, "") : uri(v));
    const opArb = fc.constantFrom(...ops);
    return opArb.chain((op) => {
      const pathParams = op.params.filter((p) => p.in === "path");
      const queryParams = op.params.filter((p) => p.in === "query");
      return fc
        .record({
          method: fc.oneof(
            { arbitrary: fc.constant(op.method), weight: 19 },
            { arbitrary: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"), weight: 1 },
          ),
          pathValues: fc.tuple(...pathParams.map((p) => fc.tuple(idFor(p.name), fc.boolean()))),
          query: fc.array(
            fc.oneof(
              ...(queryParams.length
                ? [
                    fc.tuple(
                      fc.constantFrom(...queryParams.map((p) => p.name)),
                      fc.oneof(
                        fc.constantFrom(
                          "1",
                          "10",
                          "0",
                          "true",
                          "false",
                          "token",
                          "timeslice",
                          "gmail",
                          "auto",
                          "never",
                          "force",
                          new Date().toISOString(),
                          String(Date.now()),
                        ),
                        junkString,
                      ),
                    ),
                  ]
                : []),
              fc.tuple(
                fc.oneof(
                  fc.constantFrom("limit", "cursor", "from", "to", "unknown", "__proto__", "refresh"),
                  fc.string({ maxLength: 6 }),
                ),
                junkString,
              ),
            ),
            { maxLength: 4 },
          ),
          keyName: fc.constantFrom(
            "admin",
            "writer",
            "reader",
            "stranger",
            "all",
            "none",
            "garbage",
            "wrong-secret",
            "lowercase",
            "basic",
          ),
          contentType: contentTypes,
          headers: junkHeaders,
          body: bodySpec(op.body, BODY_LIMIT),
          garbage: junkString,
        })
        .map((g): FuzzRequest => {
          let path = op.path;
          pathParams.forEach((p, i) => {
            const [v, raw] = g.pathValues[i]!;
            path = path.replace(`{${p.name}}`, encodePath(v, raw) || "x");
          });
          const qs = g.query.map(([k, v]) => `${uri(k)}=${uri(v)}`).join("&");
          const key = g.keyName in keys ? keys[g.keyName]! : null;
          const authorization =
            g.keyName === "garbage"
              ? `Bearer ${headerSafe(g.garbage)}`
              : g.keyName === "wrong-secret"
                ? `Bearer ${TEST_ADMIN_KEY.slice(0, -4)}AAAA`
                : g.keyName === "lowercase"
                  ? `bearer  ${keys.reader}`
                  : g.keyName === "basic"
                    ? "Basic YWRtaW46YWRtaW4="
                    : key
                      ? `Bearer ${key}`
                      : undefined;
          const bodyAllowed = g.method !== "GET" && g.method !== "HEAD";
          return {
            op,
            method: g.method,
            url: `${path}${qs ? `?${qs}` : ""}`,
            keyName: g.keyName,
            authorization,
            contentType: g.contentType,
            headers: g.headers.map(([k, v]) => [k, headerSafe(v)]),
            body: bodyAllowed ? g.body : { kind: "none" },
          };
        });
    });
  }

  function headersOf(r: FuzzRequest): Headers {
    const h = new Headers();
    for (const [k, v] of r.headers) {
      try {
        h.append(k, v);
      } catch {}
    }
    if (r.contentType !== undefined && r.body.kind !== "none") h.set("content-type", r.contentType);
    if (r.authorization) h.set("authorization", r.authorization);
    return h;
  }

  const failures: Failure[] = [];
  const statuses = new Map<number, number>();
  const routeStatuses = new Map<string, Set<number>>();
  const parserReplies = new Map<number, number>();
  let sent = 0;

  /**
   * `fromApp` false = Bun's HTTP layer answered before the app ran (no content type, empty body):
   * 400 for what it cannot parse, 413 past maxRequestBodySize, 431 for oversized headers, and 505
   * for a request line whose HTTP version it cannot read (HTTP/9.9, or a bare-LF line ending).
   * Those 505s are RFC 9110 §15.6.6 protocol replies from the runtime, not service failures: they
   * are counted and printed separately; any other 5xx, from either layer, fails the test.
   */
  async function judge(r: FuzzRequest, status: number, text: string, fromApp: boolean, raw?: Uint8Array) {
    sent++;
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const route = `${r.op.method} ${r.op.path}`;
    if (!routeStatuses.has(route)) routeStatuses.set(route, new Set());
    routeStatuses.get(route)!.add(status);
    if (!fromApp) parserReplies.set(status, (parserReplies.get(status) ?? 0) + 1);
    if (status >= 500 && (fromApp || status !== 505))
      failures.push({ kind: "5xx", status, request: describeRequest(r, raw), detail: text.slice(0, 500) });
    if (fromApp && status >= 400 && r.method !== "HEAD") {
      let code: unknown;
      try {
        code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
      } catch {}
      if (typeof code !== "string")
        failures.push({ kind: "error shape", status, request: describeRequest(r, raw), detail: text.slice(0, 300) });
    }
    // HEAD is served by the GET handler (Hono), so a HEAD token read is a decision like a GET.
    const method = r.method === "HEAD" ? "GET" : r.method;
    const problems = await watch.check(`${method} ${servedPath(method, r.url, r.op.path)}`, status);
    if (problems.length)
      failures.push({
        kind: "rejected request wrote rows",
        status,
        request: describeRequest(r, raw),
        detail: problems.join("; "),
      });
  }

  /**
   * The route the server actually dispatched to: URL parsing removes dot segments, so a generated
   * `/v1/tokens/ab/./status` is a token read of user "status", not the status route.
   */
  function servedPath(method: string, url: string, generated: string): string {
    let pathname: string;
    try {
      pathname = new URL(url, "http://fuzz.invalid").pathname;
    } catch {
      return generated;
    }
    const matches = ops
      .filter((o) => o.method === method && new RegExp(`^${o.path.replace(/\{[^}]+\}/g, "[^/]+")}$`).test(pathname))
      .sort((a, b) => (a.path.match(/\{/g)?.length ?? 0) - (b.path.match(/\{/g)?.length ?? 0));
    return matches[0]?.path ?? generated;
  }

  async function viaApp(r: FuzzRequest) {
    const res = await app.request(r.url, {
      method: r.method,
      headers: headersOf(r),
      body: materialize(r.body) ?? null,
    });
    await judge(r, res.status, await res.text(), true);
  }

  async function viaFetch(r: FuzzRequest) {
    let status = 0;
    let text = "";
    let fromApp = true;
    try {
      const res = await fetch(`${server.url}${r.url}`, {
        method: r.method,
        headers: headersOf(r),
        body: materialize(r.body) ?? null,
      });
      status = res.status;
      text = await res.text();
      fromApp = res.headers.has("content-type") || text !== "";
    } catch (err) {
      // The server may close a connection it refuses to read (e.g. past maxRequestBodySize).
      text = String(err);
    }
    if (status === 0) return judgeClosed(r);
    await judge(r, status, text, fromApp);
  }

  let closed = 0;
  async function judgeClosed(r: FuzzRequest, raw?: Uint8Array) {
    closed++;
    sent++;
    const problems = await watch.check(`${r.op.method} ${r.op.path}`, 499);
    if (problems.length)
      failures.push({
        kind: "closed request wrote rows",
        status: 0,
        request: describeRequest(r, raw),
        detail: problems.join("; "),
      });
  }

  /** Raw HTTP/1.1 bytes the Fetch API would refuse to send. */
  function rawBytes(r: FuzzRequest, variant: number, junk: string): Uint8Array {
    const e = new TextEncoder();
    const body = materialize(r.body);
    const bodyBytes = body === undefined ? new Uint8Array() : typeof body === "string" ? e.encode(body) : body;
    const small = bodyBytes.byteLength > 256 * 1024 ? bodyBytes.slice(0, 256 * 1024) : bodyBytes;
    const lines = [`${r.method} ${r.url} HTTP/1.1`, `Host: 127.0.0.1`, "Connection: close"];
    if (r.authorization) lines.push(`Authorization: ${r.authorization}`);
    if (r.contentType) lines.push(`Content-Type: ${r.contentType}`);
    const parts: Uint8Array[] = [];
    const bad = new Uint8Array([0xff, 0xfe, 0xc3, 0x28, 0x00, 0x7f]);
    switch (variant % 10) {
      case 0: // invalid bytes in a header value
        parts.push(
          e.encode(`${lines.join("\r\n")}\r\nX-Junk: `),
          bad,
          e.encode(`\r\nContent-Length: ${small.byteLength}\r\n\r\n`),
          small,
        );
        break;
      case 1: // invalid UTF-8 in the path
        parts.push(
          e.encode(`${r.method} /v1/requesters/`),
          bad.slice(0, 4),
          e.encode(` HTTP/1.1\r\n${lines.slice(1).join("\r\n")}\r\nContent-Length: 0\r\n\r\n`),
        );
        break;
      case 2: // bare LF line endings
        parts.push(e.encode(`${lines.join("\n")}\nContent-Length: ${small.byteLength}\n\n`), small);
        break;
      case 3: // obsolete line folding
        parts.push(
          e.encode(`${lines.join("\r\n")}\r\nX-Folded: a\r\n b\r\nContent-Length: ${small.byteLength}\r\n\r\n`),
          small,
        );
        break;
      case 4: // conflicting Content-Length
        parts.push(
          e.encode(
            lines.join("\r\n") +
              `\r\nContent-Length: ${small.byteLength}\r\nContent-Length: ${small.byteLength + 7}\r\n\r\n`,
          ),
          small,
        );
        break;
      case 5: // chunked with a broken chunk size, and Content-Length alongside (smuggling shape)
        parts.push(
          e.encode(
            lines.join("\r\n") +
              `\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n${junk.replace(/[\r\n]/g, "")}\r\n0\r\n\r\n`,
          ),
        );
        break;
      case 6: // header name junk
        parts.push(
          e.encode(
            lines.join("\r\n") +
              `\r\nBad Header: x\r\n: empty\r\n${headerSafe(junk).replace(/[:\s]/g, "") || "x"}\u0001: y\r\nContent-Length: 0\r\n\r\n`,
          ),
        );
        break;
      case 7: // one huge header
        parts.push(e.encode(`${lines.join("\r\n")}\r\nX-Huge: ${"h".repeat(80 * 1024)}\r\nContent-Length: 0\r\n\r\n`));
        break;
      case 8: // Content-Length shorter than the body (the rest looks like a pipelined request)
        parts.push(
          e.encode(`${lines.join("\r\n")}\r\nContent-Length: ${Math.floor(small.byteLength / 2)}\r\n\r\n`),
          small,
        );
        break;
      default: // junk request line
        parts.push(
          e.encode(`${headerSafe(junk) || "G E T"} ${r.url} HTTP/9.9\r\n${lines.slice(1).join("\r\n")}\r\n\r\n`),
        );
    }
    const total = parts.reduce((n, p) => n + p.byteLength, 0);
    const out = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.byteLength;
    }
    return out;
  }

  async function viaSocket(r: FuzzRequest, variant: number, junk: string) {
    const bytes = rawBytes(r, variant, junk);
    const port = Number(new URL(server.url).port);
    const chunks: Uint8Array[] = [];
    await new Promise<void>((resolve) => {
      const done = setTimeout(() => {
        sock?.end();
        resolve();
      }, 2_000);
      let sock: Awaited<ReturnType<typeof Bun.connect>> | undefined;
      Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          open(s) {
            sock = s;
            s.write(bytes);
            s.flush();
          },
          data(_s, d) {
            chunks.push(new Uint8Array(d));
          },
          close() {
            clearTimeout(done);
            resolve();
          },
          error() {
            clearTimeout(done);
            resolve();
          },
          connectError() {
            clearTimeout(done);
            resolve();
          },
        },
      }).catch(() => resolve());
    });
    const text = new TextDecoder().decode(Buffer.concat(chunks));
    // Several responses can come back (pipelining); every one must be < 500.
    const codes = [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
    if (codes.length === 0) return judgeClosed(r, bytes);
    const worst = Math.max(...codes);
    const head = text.slice(0, Math.max(text.indexOf("\r\n\r\n"), 0));
    const body = text.slice(text.indexOf("\r\n\r\n") + 4);
    const fromApp = /\r\ncontent-type:/i.test(head) || body !== "";
    // Pipelined replies cannot be told apart reliably here; the shape check needs exactly one.
    await judge(r, worst, worst >= 500 ? text : body, fromApp && codes.length === 1, bytes);
  }

  test(`${RUNS} generated requests: no 5xx, every 4xx in the error shape, no row written by a rejected request, still healthy`, async () => {
    const t0 = performance.now();
    const arb = requestArb();
    await fc.assert(
      fc.asyncProperty(arb, async (r) => {
        await viaApp(r);
      }),
      { numRuns: INPROC_RUNS, seed: SEED, endOnFailure: true },
    );
    await fc.assert(
      fc.asyncProperty(arb, async (r) => {
        await viaFetch(r);
      }),
      { numRuns: FETCH_RUNS, seed: SEED + 1, endOnFailure: true },
    );
    await fc.assert(
      fc.asyncProperty(arb, fc.nat(), junkString, async (r, v, j) => {
        await viaSocket(r, v, j);
      }),
      { numRuns: RAW_RUNS, seed: SEED + 2, endOnFailure: true },
    );
    const seconds = (performance.now() - t0) / 1000;

    // Still healthy: probes answer, and the real flows still work on the same process.
    const health = await fetch(`${server.url}/healthz`);
    const ready = await fetch(`${server.url}/readyz`);
    const put = await callApi(server.url, keys.writer!, "PUT", "/v1/tokens/gmail/after-fuzz", {
      accessToken: "still-alive",
    });
    const read = await callApi(server.url, keys.reader!, "GET", "/v1/tokens/gmail/after-fuzz");
    const grant = await callApi(server.url, keys.reader!, "POST", "/v1/access-requests", {
      resource: { type: "timeslice" },
      timeRange: { start: Date.now() - 7_200_000, end: Date.now() - 3_600_000 },
    });
    const healthy =
      health.status === 200 &&
      ready.status === 200 &&
      put.status === 201 &&
      read.status === 200 &&
      ((await read.json()) as { accessToken: string }).accessToken === "still-alive" &&
      grant.status === 201;

    const fiveXx = failures.filter((f) => f.kind === "5xx").length;
    const wrote = failures.filter((f) => f.kind.includes("wrote")).length;
    const shape = failures.filter((f) => f.kind === "error shape").length;
    const histogram = [...statuses]
      .sort((a, b) => a[0] - b[0])
      .map(([s, n]) => `${s}:${n}`)
      .join(" ");
    figure(
      `fuzz: ${sent} requests (${INPROC_RUNS} in-process, ${FETCH_RUNS} HTTP, ${RAW_RUNS} raw socket) over ${ops.length} operations in ${seconds.toFixed(0)} s, ${fiveXx} 5xx (+ ${parserReplies.get(505) ?? 0} × 505 from Bun's parser for an unreadable HTTP version), ${wrote} rejected requests that wrote rows, ${shape} bad error bodies, ${closed} connections closed by the parser, healthy after: ${healthy ? "yes" : "NO"}`,
    );
    const parser =
      [...parserReplies]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s}:${n}`)
        .join(" ") || "none";
    console.log(`  statuses: ${histogram}; answered by Bun's HTTP layer before the app: ${parser}; seed ${SEED}`);
    if (failures.length) {
      const seen = new Set<string>();
      for (const f of failures) {
        const k = `${f.kind} ${f.status} ${f.detail?.slice(0, 80)}`;
        if (seen.has(k)) continue;
        seen.add(k);
        console.log(`  ${f.kind} (${f.status}): ${f.request}\n    → ${f.detail}`);
        if (seen.size > 30) break;
      }
    }
    expect(sent).toBe(RUNS);
    expect(failures).toEqual([]);
    expect(healthy).toBe(true);
    // Every operation was reached, and not only rejected at the door.
    expect(routeStatuses.size).toBe(ops.length);
  }, 600_000);
});
