/**
 * `bun run bench`: HTTP load on the real service (PostgreSQL and PGlite, wrk in its own process),
 * the bare Bun + Hono ceiling, crypto micro-benchmarks and the raw WebCrypto baseline, policy
 * evaluation, and scaling (token reads at 10k/100k/1M rows, rewrap, audit verify). One table on
 * stdout, or with --json one JSON object. Each section is a `run*Bench()` in bench/. Reports
 * numbers; never asserts on them.
 *
 * Flags: --json  --quick (smoke: short, fewer concurrencies, small sizes)  --db=postgres|pglite|both
 *   --sections=crypto,policy,hello,http,scaling  --scenarios=tokenRead,…  --concurrency=1,16,64,256
 *   --duration=<s>  --seed=<tokens for the read scenario>  --sizes=10000,100000,1000000
 */
import { availableParallelism, cpus, loadavg, totalmem, release } from "node:os";
import { runCryptoBench } from "../bench/crypto.ts";
import { runPolicyBench } from "../bench/policy.ts";
import { SCENARIOS, runHelloBench, runHttpBench, type ScenarioResult } from "../bench/http.ts";
import { runScaling, type ScalingResult } from "../bench/scaling.ts";
import { closeSealWorkers, type BenchDb } from "../bench/seed.ts";
import { ensureWrk } from "../bench/wrk.ts";
import { runScript } from "./lib/run-script.ts";

const SECTIONS = ["crypto", "policy", "hello", "http", "scaling"] as const;
type Section = (typeof SECTIONS)[number];

function parseArgs(argv: string[]) {
  const flags = new Map<string, string>();
  for (const a of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}; see the header of scripts/bench.ts`);
    flags.set(m[1]!, m[2] ?? "true");
  }
  const known = ["json", "quick", "db", "sections", "scenarios", "concurrency", "duration", "seed", "sizes"];
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
    sizes: nums("sizes") ?? (quick ? [1000, 5000] : [10_000, 100_000, 1_000_000]),
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
  const result: {
    machine: typeof m & { loadAverageAtEnd?: number[] };
    settings: Record<string, unknown>;
    scenarios: Record<string, Omit<ScenarioResult, "scenario">>;
    baselines: {
      helloHono?: Record<
        string,
        {
          concurrency: number;
          reqPerSec: number;
          p50Ms: number;
          p99Ms: number;
          errors: number;
          serverCpuUsPerReq?: number;
        }
      >;
      crypto?: Record<string, { usPerOp: number; opsPerSec: number }>;
    };
    ratios: { tokenReadVsHello: number | null; cryptoVsRaw: number | null; tokenReadVsHelloAt?: string };
    policy?: { evaluationsPerSec: number; usPerEvaluation: number };
    scaling?: ScalingResult;
  } = {
    machine: m,
    settings: { ...o, json: undefined },
    scenarios: {},
    baselines: {},
    ratios: { tokenReadVsHello: null, cryptoVsRaw: null },
  };

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
  if (has("hello")) {
    const h = await runHelloBench(load);
    result.baselines.helloHono = Object.fromEntries(
      h.map((r) => [
        `c${r.concurrency}`,
        {
          concurrency: r.concurrency,
          reqPerSec: r.reqPerSec,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          errors: r.errors,
          serverCpuUsPerReq: r.serverCpuUsPerReq,
        },
      ]),
    );
  }
  if (has("http")) {
    const rows = await runHttpBench({ ...load, dbs: o.dbs, scenarios: o.scenarios, seedTokens: o.seedTokens });
    for (const r of rows) {
      const { scenario, ...rest } = r;
      result.scenarios[`${scenario}/${r.db}/c${r.concurrency}`] = rest;
    }
  }
  if (has("scaling")) {
    result.scaling = await runScaling({
      sizes: o.sizes,
      concurrency: 64,
      durationSec: o.durationSec + 2,
      rewrapRecords: o.quick ? 2000 : 20_000,
      auditRows: o.quick ? 5000 : 100_000,
      progress,
    });
  }
  closeSealWorkers();

  // Token read vs the bare-Hono ceiling at 64 connections (or the nearest concurrency both ran), PostgreSQL first.
  const hello = result.baselines.helloHono;
  if (hello) {
    const cs = [...o.concurrencies].sort((a, b) => Math.abs(a - 64) - Math.abs(b - 64));
    outer: for (const db of ["postgres", "pglite"]) {
      for (const c of cs) {
        const t = result.scenarios[`tokenRead/${db}/c${c}`];
        const h = hello[`c${c}`];
        if (t && h && h.reqPerSec > 0) {
          result.ratios.tokenReadVsHello = Math.round((t.reqPerSec / h.reqPerSec) * 10_000) / 10_000;
          result.ratios.tokenReadVsHelloAt = `${db}, ${c} connections`;
          break outer;
        }
      }
    }
  }
  result.machine.loadAverageAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);

  if (o.json) {
    console.log(JSON.stringify(result));
    return;
  }
  printTable(result);
});

function printTable(r: any) {
  const pad = (s: unknown, n: number) => String(s).padStart(n);
  console.log(
    `machine: ${r.machine.cores} cores (${r.machine.cpu}), bun ${r.machine.bun}, ${r.machine.generator}; load average ${r.machine.loadAverageAtStart.join(" ")} → ${r.machine.loadAverageAtEnd.join(" ")}`,
  );
  if (r.baselines.helloHono || Object.keys(r.scenarios).length) {
    console.log(
      `\n${"scenario".padEnd(16)} ${"db".padEnd(9)} ${pad("conns", 5)} ${pad("req/s", 8)} ${pad("p50 ms", 8)} ${pad("p99 ms", 8)} ${pad("errors", 7)} ${pad("cpu µs/req", 10)}`,
    );
    for (const h of Object.values(r.baselines.helloHono ?? {}) as any[])
      console.log(
        `${"hello (Hono)".padEnd(16)} ${"-".padEnd(9)} ${pad(h.concurrency, 5)} ${pad(h.reqPerSec, 8)} ${pad(h.p50Ms, 8)} ${pad(h.p99Ms, 8)} ${pad(h.errors, 7)} ${pad(h.serverCpuUsPerReq ?? "-", 10)}`,
      );
    for (const [k, s] of Object.entries(r.scenarios) as any[])
      console.log(
        `${k.split("/")[0].padEnd(16)} ${s.db.padEnd(9)} ${pad(s.concurrency, 5)} ${pad(s.reqPerSec, 8)} ${pad(s.p50Ms, 8)} ${pad(s.p99Ms, 8)} ${pad(s.errors, 7)} ${pad(s.serverCpuUsPerReq ?? "-", 10)}`,
      );
  }
  if (r.baselines.crypto) {
    console.log(`\n${"crypto".padEnd(42)} ${pad("µs/op", 9)} ${pad("ops/s", 9)}`);
    for (const [k, v] of Object.entries(r.baselines.crypto) as any[])
      console.log(`${k.padEnd(42)} ${pad(v.usPerOp, 9)} ${pad(v.opsPerSec, 9)}`);
  }
  if (r.policy)
    console.log(
      `\npolicy.evaluate (10 policies): ${r.policy.usPerEvaluation} µs, ${r.policy.evaluationsPerSec} evaluations/s`,
    );
  if (r.scaling) {
    console.log(
      `\n${"token read, PostgreSQL".padEnd(24)} ${pad("tokens", 8)} ${pad("conns", 5)} ${pad("req/s", 8)} ${pad("p50 ms", 8)} ${pad("p99 ms", 8)} ${pad("errors", 7)} ${pad("seed rows/s", 11)}`,
    );
    for (const s of r.scaling.tokenRead)
      console.log(
        `${"".padEnd(24)} ${pad(s.tokens, 8)} ${pad(s.concurrency, 5)} ${pad(s.reqPerSec, 8)} ${pad(s.p50Ms, 8)} ${pad(s.p99Ms, 8)} ${pad(s.errors, 7)} ${pad(s.seedRowsPerSec, 11)}`,
      );
    console.log(
      `rewrap (PostgreSQL, ${r.scaling.rewrap.records} records, batch ${r.scaling.rewrap.batchSize}): ${r.scaling.rewrap.recordsPerSec} records/s`,
    );
    console.log(
      `audit verify (PostgreSQL, ${r.scaling.auditVerify.rows} rows): ${r.scaling.auditVerify.rowsPerSec} rows/s (valid: ${r.scaling.auditVerify.valid})`,
    );
  }
  console.log(
    `\nratios: token read / bare Hono = ${r.ratios.tokenReadVsHello ?? "n/a"}${r.ratios.tokenReadVsHelloAt ? ` (${r.ratios.tokenReadVsHelloAt})` : ""}; envelope.decrypt / raw WebCrypto = ${r.ratios.cryptoVsRaw ?? "n/a"}`,
  );
}
