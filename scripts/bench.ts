/**
 * `bun run bench`: everything issue #13's targets name, in one run. HTTP load on the real service
 * (PostgreSQL and PGlite, wrk in its own process), the bare Bun + Hono ceiling, the naive baseline
 * (bench/naive.ts: Hono + Prisma findUnique + AES-GCM, on PostgreSQL), sequential 1-connection grant
 * latency for 1 s / 1 h / 24 h ranges and the floor they are judged against (bench/latency.ts),
 * crypto micro-benchmarks and the raw WebCrypto baseline, policy evaluation, and scaling (token reads
 * at 10k/100k/1M rows, rewrap, audit verify). One table on stdout, or with --json one JSON object on
 * the last line; the ratios are defined in bench/report.ts. Reports numbers; never asserts on them.
 *
 * Flags: --json  --quick (smoke: short, fewer concurrencies, small sizes)  --db=postgres|pglite|both
 *   --sections=crypto,policy,hello,http,naive,grants,scaling  --scenarios=tokenRead,…
 *   --concurrency=1,16,64,256  --duration=<s>  --seed=<tokens for the read scenario>
 *   --iterations=<rounds of the sequential grant + floor loop: each grant range, round trip, INSERT once>
 *   --sizes=10000,100000,1000000|none (token-read scaling sizes; none skips it)
 *   --rewrap=<records>  --audit-rows=<rows>
 *   --cpu-prof[=<dir>]  start the service and the naive baseline under `bun --cpu-prof`; profiles are
 *     written to <dir> (default: a new temp dir) when they stop, and their paths printed;
 *     summarise one with `bun bench/profile-summary.ts <file>`. Profiling slows them: don't quote figures.
 */
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { availableParallelism, cpus, loadavg, totalmem, release, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { runCryptoBench } from "../bench/crypto.ts";
import { runPolicyBench } from "../bench/policy.ts";
import { SCENARIOS, runHelloBench, runHttpBench } from "../bench/http.ts";
import { computeRatios, noRanges, printTable, type BenchResult } from "../bench/report.ts";
import { runScaling } from "../bench/scaling.ts";
import { closeSealWorkers, type BenchDb } from "../bench/seed.ts";
import { ensureWrk, type LoadResult } from "../bench/wrk.ts";
import { runScript } from "./lib/run-script.ts";

const SECTIONS = ["crypto", "policy", "hello", "http", "naive", "grants", "scaling"] as const;
type Section = (typeof SECTIONS)[number];

function parseArgs(argv: string[]) {
  const flags = new Map<string, string>();
  for (const a of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}; see the header of scripts/bench.ts`);
    flags.set(m[1]!, m[2] ?? "true");
  }
  const known = [
    ...["json", "quick", "db", "sections", "scenarios", "concurrency", "duration", "seed", "sizes"],
    ...["iterations", "rewrap", "audit-rows", "cpu-prof"],
  ];
  for (const k of flags.keys())
    if (!known.includes(k)) throw new Error(`unknown flag --${k}; known: ${known.map((k) => `--${k}`).join(" ")}`);
  const list = (k: string) =>
    flags
      .get(k)
      ?.split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  const nums = (k: string) =>
    list(k)?.map((s) => {
      const n = Number(s.replace(/_/g, ""));
      if (!Number.isFinite(n) || n <= 0) throw new Error(`--${k}: "${s}" is not a positive number`);
      return n;
    });
  const quick = flags.has("quick");
  const db = flags.get("db") ?? "both";
  if (!["postgres", "pglite", "both"].includes(db))
    throw new Error(`--db must be postgres, pglite or both, got "${db}"`);
  const sections = (list("sections") ?? [...SECTIONS]) as Section[];
  for (const s of sections)
    if (!SECTIONS.includes(s)) throw new Error(`--sections: unknown section "${s}"; known: ${SECTIONS.join(",")}`);
  const scenarios = list("scenarios");
  for (const s of scenarios ?? [])
    if (!SCENARIOS.some((x) => x.name === s))
      throw new Error(`--scenarios: unknown scenario "${s}"; known: ${SCENARIOS.map((x) => x.name).join(",")}`);
  return {
    json: flags.has("json"),
    quick,
    dbs: (db === "both" ? ["postgres", "pglite"] : [db]) as BenchDb[],
    sections,
    scenarios,
    concurrencies: nums("concurrency") ?? (quick ? [1, 64] : [1, 16, 64, 256]),
    durationSec: nums("duration")?.[0] ?? (quick ? 1 : 3),
    seedTokens: nums("seed")?.[0] ?? (quick ? 1000 : 10_000),
    sizes:
      flags.get("sizes") === "none" ? [] : (nums("sizes") ?? (quick ? [1000, 5000] : [10_000, 100_000, 1_000_000])),
    iterations: nums("iterations")?.[0] ?? (quick ? 20 : 300),
    rewrapRecords: nums("rewrap")?.[0] ?? (quick ? 2000 : 20_000),
    auditRows: nums("audit-rows")?.[0] ?? (quick ? 5000 : 100_000),
    cpuProfDir: !flags.has("cpu-prof")
      ? undefined
      : flags.get("cpu-prof") === "true"
        ? mkdtempSync(join(tmpdir(), "chronokms-cpu-prof-"))
        : resolve(flags.get("cpu-prof")!),
  };
}

async function machine() {
  const wrk =
    Bun.spawnSync([await ensureWrk(), "--version"])
      .stdout.toString()
      .split("\n")[0]
      ?.trim() ?? "wrk";
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: availableParallelism(),
    memoryGb: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    bun: Bun.version,
    generator: `${wrk.split(" [")[0]}, 1 thread, same machine`,
    loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

await runScript(async () => {
  const o = parseArgs(Bun.argv.slice(2));
  const progress = (line: string) => console.error(line);
  const has = (s: Section) => o.sections.includes(s);
  const m = await machine();
  const result: BenchResult = {
    machine: m,
    settings: { ...o, json: undefined },
    scenarios: {},
    baselines: {},
    ratios: {
      tokenReadVsHello: null,
      cryptoVsRaw: null,
      tokenReadVsNaive: null,
      pgliteVsPostgres: { tokenRead: null, grant: null, grantByRange: noRanges() },
      grantVsFloor: noRanges(),
      grantVsFloorPglite: noRanges(),
    },
    tokenReadCpuUs: null,
    tokenReadP99Ms: null,
    rewrapPerSecond: null,
  };
  if (o.cpuProfDir) {
    mkdirSync(o.cpuProfDir, { recursive: true });
    progress(`bench: CPU profiles go to ${o.cpuProfDir} (profiling slows the service: do not quote these figures)`);
  }

  if (has("crypto")) {
    progress("crypto…");
    const c = await runCryptoBench();
    result.baselines.crypto = c;
    const dec = c["envelope.decrypt"]?.usPerOp;
    const raw = c["raw ECDH+AES-GCM decrypt (baseline)"]?.usPerOp;
    if (dec && raw) result.ratios.cryptoVsRaw = Math.round((dec / raw) * 100) / 100;
  }
  if (has("policy")) {
    const p = runPolicyBench();
    result.policy = { evaluationsPerSec: p.opsPerSec, usPerEvaluation: Math.round(p.usPerOp * 100) / 100 };
  }
  const load = { concurrencies: o.concurrencies, durationSec: o.durationSec, warmupSec: o.quick ? 0 : 1, progress };
  const row = (r: LoadResult & { concurrency: number }) => ({
    concurrency: r.concurrency,
    reqPerSec: r.reqPerSec,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    errors: r.errors,
    serverCpuUsPerReq: r.serverCpuUsPerReq,
  });
  if (has("hello")) {
    const h = await runHelloBench(load);
    result.baselines.helloHono = Object.fromEntries(h.map((r) => [`c${r.concurrency}`, row(r)]));
  }
  if (has("http") || has("naive") || has("grants")) {
    const h = await runHttpBench({
      ...load,
      dbs: o.dbs,
      scenarios: has("http") ? o.scenarios : [],
      seedTokens: o.seedTokens,
      naive: has("naive"),
      ...(has("grants") ? { grants: { iterations: o.iterations } } : {}),
      ...(o.cpuProfDir ? { cpuProfDir: o.cpuProfDir } : {}),
    });
    for (const r of h.scenarios) {
      const { scenario, ...rest } = r;
      result.scenarios[`${scenario}/${r.db}/c${r.concurrency}`] = rest;
    }
    if (h.naive.length)
      result.baselines.naive = Object.fromEntries(
        h.naive.map((r) => [`c${r.concurrency}`, { db: "postgres" as const, ...row(r) }]),
      );
    if (has("grants")) {
      result.grants = h.grants;
      result.floor = h.floor;
    }
    if (h.profiles.length) result.profiles = h.profiles;
  }
  if (has("scaling")) {
    result.scaling = await runScaling({
      sizes: o.sizes,
      concurrency: 64,
      durationSec: o.durationSec + 2,
      rewrapRecords: o.rewrapRecords,
      auditRows: o.auditRows,
      progress,
    });
  }
  closeSealWorkers();
  computeRatios(result, o.concurrencies);
  result.machine.loadAverageAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  for (const p of result.profiles ?? [])
    progress(`bench: CPU profile ${p}${existsSync(p) ? "" : " (missing: did the process exit cleanly?)"}`);

  if (o.json) {
    console.log(JSON.stringify(result));
    return;
  }
  printTable(result);
});
