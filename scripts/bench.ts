/**
 * `bun run bench`: crypto micro-benchmarks, policy evaluation and rotation (rewrap) throughput, as one
 * table plus the envelope-vs-raw-WebCrypto ratio. Each section is a `run*Bench()` in bench/; add new
 * sections (e.g. HTTP load) to `sections` below. Rewrap runs on in-memory PGlite unless
 * BENCH_DATABASE_URL names an empty PostgreSQL database. Reports numbers; never asserts on them.
 */
import { runCryptoBench } from "../bench/crypto.ts";
import { runPolicyBench } from "../bench/policy.ts";
import { runRewrapBench } from "../bench/rewrap.ts";

interface Row {
  name: string;
  opsPerSec: number;
  usPerOp: number;
  unit: string;
}

const sections: Array<{ title: string; run: () => Promise<Row[]> }> = [
  {
    title: "crypto",
    run: async () => Object.entries(await runCryptoBench()).map(([name, r]) => ({ name, ...r, unit: "ops" })),
  },
  {
    title: "policy",
    run: async () => {
      const r = runPolicyBench();
      return [{ name: "policy.evaluate (10 policies)", opsPerSec: r.opsPerSec, usPerOp: Math.round(r.usPerOp * 100) / 100, unit: "evals" }];
    },
  },
  {
    title: "rotation",
    run: async () => {
      const url = process.env.BENCH_DATABASE_URL;
      const r = await runRewrapBench(url ? { target: { kind: "postgres", url } } : { records: 5000 });
      return [{ name: `rewrap oauth_tokens (${r.records}, batch ${r.batchSize}, ${url ? "postgres" : "pglite"})`, opsPerSec: r.recordsPerSec, usPerOp: Math.round((1e6 / r.recordsPerSec) * 10) / 10, unit: "records" }];
    },
  },
];

const all: Row[] = [];
for (const s of sections) {
  console.error(`running ${s.title}…`);
  const rows = await s.run();
  all.push(...rows);
}
console.log(`${"benchmark".padEnd(56)} ${"µs/op".padStart(10)} ${"per second".padStart(12)}`);
for (const r of all) console.log(`${r.name.padEnd(56)} ${String(r.usPerOp).padStart(10)} ${`${r.opsPerSec} ${r.unit}`.padStart(20)}`);
const us = (name: string) => all.find((r) => r.name === name)?.usPerOp;
const dec = us("envelope.decrypt");
const raw = us("raw ECDH+AES-GCM decrypt (baseline)");
if (dec && raw) console.log(`\nenvelope.decrypt / raw WebCrypto ECDH+AES-GCM: ${(dec / raw).toFixed(2)}x`);
