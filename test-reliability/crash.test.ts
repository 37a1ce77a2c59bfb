/**
 * Crash consistency (PostgreSQL): SIGKILL at a random moment, repeated over trials that cycle
 * through (a) the service killed during a write load (token PUTs + access requests), (b) the
 * service killed during `POST /v1/keys/rotate`'s background re-encryption while the write load
 * runs, (c) `bun scripts/keys-rotate.ts` killed midway while the service serves. After every
 * trial: every acknowledged write is present and decrypts to what was written (read through the
 * API; a write in flight at the kill may or may not have landed), every acknowledged grant has its
 * access_requests row, every seeded token still decrypts, and the audit chain verifies (unsigned
 * tails and unclosed chains are expected after a kill; `valid` must hold). At the end a full
 * `keys:rotate --no-rotate` run finishes whatever rotation was interrupted.
 *
 * Size: RELIABILITY_CRASH_TRIALS (default 20), RELIABILITY_CRASH_SEEDED (tokens that rotations
 * re-encrypt, default 400).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { projectRoot } from "../src/db/migration-files.ts";
import { TEST_ADMIN_KEY } from "../test/support/app.ts";
import { createTestDatabase, type TestDatabase, describeOnPostgres } from "../test/support/databases.ts";
import { callApi, provision } from "../test/tokens/helpers.ts";
import { requestPastHour } from "./load.ts";
import { envInt, figure, verifyAudit } from "./support.ts";
import { anchorFileFor, serviceEnv, startService, type ServiceProcess } from "../test/support/processes.ts";

const TRIALS = envInt("RELIABILITY_CRASH_TRIALS", 20);
const SEEDED = envInt("RELIABILITY_CRASH_SEEDED", 400);
const WRITERS = 4;
const KINDS = ["write", "rotate-service", "write", "rotate-script"] as const;
type Kind = (typeof KINDS)[number];

interface Expectation {
  acked?: string;
  /** Values whose write was in flight when the process died (after the last ack). */
  maybe: Set<string>;
}

describeOnPostgres("crash consistency: SIGKILL during writes and rotation", () => {
  let db: TestDatabase;
  let svc: ServiceProcess;
  let keys: { writer: string; reader: string; exporter: string };
  const expected = new Map<string, Expectation>();
  const seeded = new Map<string, string>();
  const ackedGrants: string[] = [];
  /** Responses that are neither success nor a clean 503 while the process was alive. */
  const loadErrors: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    svc = await startService(db.url);
    keys = await provision(svc.url, TEST_ADMIN_KEY);
    // Tokens for rotations to re-encrypt (so a kill lands mid re-encryption).
    const ids = Array.from({ length: SEEDED }, (_, i) => `seed-${i}`);
    for (let i = 0; i < ids.length; i += 25) {
      await Promise.all(
        ids.slice(i, i + 25).map(async (u) => {
          const v = `seeded-${u}-${crypto.randomUUID()}`;
          const res = await callApi(svc.url, keys.writer, "PUT", `/v1/tokens/crash/${u}`, {
            accessToken: v,
            refreshToken: `r-${v}`,
          });
          expect(res.status).toBe(201);
          seeded.set(u, v);
        }),
      );
    }
  }, 120_000);

  afterAll(async () => {
    await svc?.stop().catch(() => {});
    await db?.close();
  });

  /** Writers each own their keys, so "last acknowledged" per key is well defined. */
  function writeLoad(base: string) {
    let running = true;
    let acks = 0;
    const worker = async (w: number) => {
      for (let n = 0; running; n++) {
        const roll = Math.random();
        try {
          if (roll < 0.75) {
            const key = `w${w}-${n % 40}`;
            const value = `v-${key}-${crypto.randomUUID()}`;
            const e = expected.get(key) ?? { maybe: new Set<string>() };
            expected.set(key, e);
            e.maybe.add(value);
            const res = await fetch(`${base}/v1/tokens/crash/${key}`, {
              method: "PUT",
              headers: { authorization: `Bearer ${keys.writer}`, "content-type": "application/json" },
              body: JSON.stringify({ accessToken: value, refreshToken: `r-${value}` }),
            });
            await res.text();
            if (res.status === 200 || res.status === 201) {
              e.acked = value;
              e.maybe.clear();
              acks++;
            } else if (res.status !== 503) {
              loadErrors.push(`PUT ${key}: ${res.status}`);
            }
          } else {
            const res = await requestPastHour(base, keys.reader);
            const body = (await res.json()) as { id?: string };
            if (res.status === 201 && body.id) {
              ackedGrants.push(body.id);
              acks++;
            } else if (res.status !== 503) {
              loadErrors.push(`grant: ${res.status}`);
            }
          }
        } catch {
          // The process died under us: this worker's in-flight write stays in `maybe`.
          return;
        }
      }
    };
    const done = Promise.all(Array.from({ length: WRITERS }, (_, w) => worker(w)));
    return {
      acks: () => acks,
      async stop() {
        running = false;
        await done;
      },
    };
  }

  async function readToken(
    base: string,
    userId: string,
  ): Promise<{ status: number; value?: string; refresh?: string }> {
    // The export endpoint (role exporter) is the one response that carries the refresh token too.
    const res = await fetch(`${base}/v1/tokens/crash/${userId}/export`, {
      headers: { authorization: `Bearer ${keys.exporter}` },
    });
    if (res.status !== 200) return { status: res.status };
    const b = (await res.json()) as { accessToken: string; refreshToken?: string };
    return { status: 200, value: b.accessToken, refresh: b.refreshToken };
  }

  /**
   * Every committed change has its audit row and every audit row its change (SPEC §6 v2): each
   * token row's write (issuedAt) has its TOKEN_STORED row and the last TOKEN_STORED row of each
   * token names the write the table holds; each access_requests row has its decision row and vice
   * versa; each key version after the first has its KEY_ROTATED row and vice versa.
   */
  async function checkPairs(): Promise<string[]> {
    const [r] = await db.prisma.$queryRawUnsafe<Array<Record<string, bigint>>>(`SELECT
      (SELECT count(*) FROM oauth_tokens t WHERE NOT EXISTS (SELECT 1 FROM audit_logs a WHERE a."eventType" = 'TOKEN_STORED'
         AND a.target = 'token:' || t.integration || ':' || t."userId" AND a.details->>'issuedAt' = to_char(t."issuedAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))) AS tokens_without_row,
      (SELECT count(*) FROM (SELECT DISTINCT ON (a.target) a.target, a.details->>'issuedAt' AS issued FROM audit_logs a WHERE a."eventType" = 'TOKEN_STORED'
         ORDER BY a.target, a.timestamp DESC, a.details->>'issuedAt' DESC) l
         WHERE NOT EXISTS (SELECT 1 FROM oauth_tokens t WHERE l.target = 'token:' || t.integration || ':' || t."userId"
           AND l.issued = to_char(t."issuedAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))) AS rows_without_token,
      (SELECT count(*) FROM access_requests r WHERE NOT EXISTS (SELECT 1 FROM audit_logs a WHERE a."eventType" IN ('ACCESS_GRANTED','ACCESS_DENIED') AND a.details->>'accessRequestId' = r.id::text)) AS requests_without_row,
      (SELECT count(*) FROM audit_logs a WHERE a."eventType" IN ('ACCESS_GRANTED','ACCESS_DENIED') AND a.details ? 'accessRequestId'
         AND NOT EXISTS (SELECT 1 FROM access_requests r WHERE r.id::text = a.details->>'accessRequestId')) AS rows_without_request,
      (SELECT count(*) FROM master_keys k WHERE k.version > 1 AND NOT EXISTS (SELECT 1 FROM audit_logs a WHERE a."eventType" = 'KEY_ROTATED' AND a.target = 'key:v' || k.version)) AS versions_without_row,
      (SELECT count(*) FROM audit_logs a WHERE a."eventType" = 'KEY_ROTATED' AND NOT EXISTS (SELECT 1 FROM master_keys k WHERE a.target = 'key:v' || k.version)) AS rows_without_version`);
    return Object.entries(r ?? {})
      .filter(([, n]) => Number(n) > 0)
      .map(([k, n]) => `${k}: ${n}`);
  }

  /** Abandoned chains (a killed process's) are sealed by the service; GET /v1/audit-logs/head triggers it now. */
  async function sealThenVerify(base: string) {
    const res = await callApi(base, TEST_ADMIN_KEY, "GET", "/v1/audit-logs/head");
    await res.text();
    return verifyAudit(db, anchorFileFor(db.url!));
  }

  /** Every acknowledged write and grant survived; a sample of seeded tokens (or all) decrypts. */
  async function checkDurable(base: string, all: boolean): Promise<string[]> {
    const problems: string[] = [];
    for (const [key, e] of expected) {
      const r = await readToken(base, key);
      if (r.status === 404 && e.acked === undefined) continue; // only unacknowledged writes, none landed
      const allowed = new Set([...(e.acked ? [e.acked] : []), ...e.maybe]);
      if (r.status !== 200 || !allowed.has(r.value!) || r.refresh !== `r-${r.value}`) {
        problems.push(`${key}: ${r.status} ${r.value?.slice(0, 30)} (acknowledged ${e.acked?.slice(0, 30)})`);
        continue;
      }
      e.acked = r.value;
      e.maybe.clear();
    }
    const sample = all ? [...seeded] : [...seeded].sort(() => Math.random() - 0.5).slice(0, 40);
    for (const [u, v] of sample) {
      const r = await readToken(base, u);
      if (r.status !== 200 || r.value !== v || r.refresh !== `r-${v}`) problems.push(`seeded ${u}: ${r.status}`);
    }
    const ids = [...new Set(ackedGrants)];
    const found = ids.length ? await db.prisma.accessRequest.count({ where: { id: { in: ids } } }) : 0;
    if (found !== ids.length) problems.push(`${ids.length - found} acknowledged grants have no access_requests row`);
    return problems;
  }

  test(`${TRIALS} SIGKILL trials: acknowledged writes survive and decrypt, audit chain verifies`, async () => {
    const t0 = performance.now();
    const tally: Record<Kind, number> = { write: 0, "rotate-service": 0, "rotate-script": 0 };
    const failures: string[] = [];
    let acked = 0;
    let unsignedTail = 0;
    let killedMidRewrap = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      const kind = KINDS[trial % KINDS.length]!;
      tally[kind]++;
      if (kind === "rotate-script") {
        // The service keeps serving (and writing); the script is killed midway through its run.
        const load = writeLoad(svc.url);
        const script = Bun.spawn([process.execPath, "scripts/keys-rotate.ts", "--batch-size", "50"], {
          cwd: projectRoot,
          env: serviceEnv(db.url, 0),
          stdout: "ignore",
          stderr: "ignore",
        });
        await Bun.sleep(400 + Math.random() * 1_000);
        const finished = script.exitCode !== null;
        script.kill("SIGKILL");
        await script.exited;
        if (!finished) killedMidRewrap++;
        await load.stop();
        acked += load.acks();
      } else {
        const load = writeLoad(svc.url);
        if (kind === "rotate-service") {
          await Bun.sleep(100 + Math.random() * 200);
          const res = await callApi(svc.url, TEST_ADMIN_KEY, "POST", "/v1/keys/rotate");
          if (res.status !== 201) failures.push(`trial ${trial}: rotate ${res.status}`);
          // The background re-encryption of SEEDED tokens takes a second or two; die during it.
          await Bun.sleep(Math.random() * 800);
          const pending = await db.prisma.$queryRawUnsafe<Array<{ n: bigint }>>(
            `SELECT count(*) AS n FROM oauth_tokens WHERE "keyVersion" <> (SELECT version FROM master_keys WHERE status = 'active')`,
          );
          if (Number(pending[0]?.n ?? 0) > 0) killedMidRewrap++;
        } else {
          await Bun.sleep(200 + Math.random() * 1_300);
        }
        await svc.kill();
        await load.stop();
        acked += load.acks();
        svc = await startService(db.url);
      }
      const problems = await checkDurable(svc.url, false);
      problems.push(...(await checkPairs()));
      const v = await sealThenVerify(svc.url);
      unsignedTail = v.unsignedTailRows;
      if (!v.valid) problems.push(`audit invalid: ${JSON.stringify(v.findings.slice(0, 3))}`);
      failures.push(...problems.map((p) => `trial ${trial} (${kind}): ${p}`));
    }

    // Finish whatever rotation a kill interrupted, then everything must decrypt on one version.
    const finish = Bun.spawn([process.execPath, "scripts/keys-rotate.ts", "--no-rotate"], {
      cwd: projectRoot,
      env: serviceEnv(db.url, 0),
      stdout: "pipe",
      stderr: "pipe",
    });
    const finishOut = (await new Response(finish.stdout).text()) + (await new Response(finish.stderr).text());
    const finishCode = await finish.exited;
    if (finishCode !== 0) failures.push(`keys:rotate --no-rotate exited ${finishCode}: ${finishOut.slice(-500)}`);
    failures.push(...(await checkDurable(svc.url, true)).map((p) => `final: ${p}`));
    const versions = await db.prisma.masterKey.groupBy({ by: ["status"], _count: true });
    const active = versions.find((v) => v.status === "active")?._count ?? 0;
    const stragglers = await db.prisma.$queryRawUnsafe<Array<{ n: bigint }>>(
      `SELECT count(*) AS n FROM oauth_tokens WHERE "keyVersion" <> (SELECT version FROM master_keys WHERE status = 'active')`,
    );
    failures.push(...(await checkPairs()).map((p) => `final: ${p}`));
    const v = await sealThenVerify(svc.url);

    figure(
      `crash: ${TRIALS} SIGKILL trials (${tally.write} write load, ${tally["rotate-service"]} service during rotation, ${tally["rotate-script"]} keys:rotate script; ${killedMidRewrap} killed mid re-encryption) in ${((performance.now() - t0) / 1000).toFixed(0)} s: ` +
        `${acked} acknowledged writes/grants, ${failures.length} lost or undecryptable or unpaired with their audit row; ${expected.size + seeded.size} tokens decrypt; audit ${v.valid ? "valid" : "INVALID"} (${v.checked} rows, ${v.anchorsChecked} anchors, ${v.unclosedChains} unclosed chains, ${unsignedTail} unsigned tail rows after the last kill)`,
    );
    failures.push(...loadErrors);
    if (failures.length) console.log(`  ${failures.slice(0, 30).join("\n  ")}`);
    expect(failures).toEqual([]);
    expect(active).toBe(1);
    expect(Number(stragglers[0]!.n)).toBe(0);
    expect(v.valid).toBe(true);
    expect(acked).toBeGreaterThan(TRIALS * 5);
  }, 600_000);
});
