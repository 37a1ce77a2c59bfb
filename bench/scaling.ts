/**
 * Scaling: token-read latency as the vault grows (10k → 100k → 1M rows, bulk-seeded into one
 * PostgreSQL database while the service runs), rotation rewrap records/s (`runRewrapBench`), and
 * `audit:verify` rows/s (`runAuditBench`). `bun bench/scaling.ts`. Reports numbers; never asserts.
 */
import { runAuditBench } from "./audit.ts";
import { READ_INTEGRATION, SCENARIOS, runScenario, startBenchService } from "./http.ts";
import { runRewrapBench, type RewrapBenchResult } from "./rewrap.ts";
import { createBenchDatabase, openForSeeding, seedTokens, settleAfterLoad } from "./seed.ts";
import type { LoadResult } from "./wrk.ts";

export interface ScalingOptions {
  /** Vault sizes for the token-read scaling run; empty skips it (rewrap and audit verify still run). */
  sizes: number[];
  concurrency: number;
  durationSec: number;
  rewrapRecords: number;
  auditRows: number;
  progress?: (line: string) => void;
}

export interface ScalingResult {
  tokenRead: Array<LoadResult & { tokens: number; concurrency: number; db: "postgres"; seedRowsPerSec: number }>;
  rewrap: { db: "postgres"; records: number; batchSize: number; recordsPerSec: number; seconds: number };
  auditVerify: {
    db: "postgres";
    rows: number;
    rowsPerSec: number;
    ms: number;
    valid: boolean;
    writeEventsPerSec: number;
  };
}

export async function runTokenReadScaling(
  o: Pick<ScalingOptions, "sizes" | "concurrency" | "durationSec" | "progress">,
): Promise<ScalingResult["tokenRead"]> {
  const sizes = [...o.sizes].sort((a, b) => a - b);
  const out: ScalingResult["tokenRead"] = [];
  if (!sizes.length) return out;
  const t0 = performance.now();
  const svc = await startBenchService("postgres", { seedTokens: sizes[0]! });
  let seeded = sizes[0]!;
  let seedRate = Math.round(seeded / ((performance.now() - t0) / 1000));
  const read = SCENARIOS.find((s) => s.name === "tokenRead")!;
  try {
    for (const size of sizes) {
      if (size > seeded) {
        o.progress?.(`scaling: seeding ${size - seeded} more tokens (to ${size})…`);
        const s = await openForSeeding(svc.bdb);
        try {
          seedRate = (
            await seedTokens(s.db, s.keys, { integration: READ_INTEGRATION, from: seeded, count: size - seeded })
          ).rowsPerSec;
          await settleAfterLoad(s.db);
        } finally {
          await s.close();
        }
        seeded = size;
      }
      await runScenario(svc, read, o.concurrency, Math.min(2, o.durationSec), seeded); // warm-up
      const r = await runScenario(svc, read, o.concurrency, o.durationSec, seeded);
      o.progress?.(
        `scaling: tokenRead with ${size} tokens c=${o.concurrency}: ${r.reqPerSec} req/s p50 ${r.p50Ms} ms p99 ${r.p99Ms} ms errors ${r.errors}`,
      );
      out.push({ tokens: size, concurrency: o.concurrency, db: "postgres", seedRowsPerSec: seedRate, ...r });
    }
  } finally {
    await svc.stop();
  }
  return out;
}

export async function runScaling(o: ScalingOptions): Promise<ScalingResult> {
  const tokenRead = await runTokenReadScaling(o);
  o.progress?.(`scaling: rewrap of ${o.rewrapRecords} records…`);
  const bdb = await createBenchDatabase("postgres");
  let rewrap: RewrapBenchResult;
  try {
    if (bdb.target.kind !== "postgres") throw new Error("unreachable");
    rewrap = await runRewrapBench({ target: { kind: "postgres", url: bdb.target.url }, records: o.rewrapRecords });
  } finally {
    await bdb.dispose();
  }
  o.progress?.(`scaling: rewrap ${rewrap.recordsPerSec} records/s; audit write + verify of ${o.auditRows} rows…`);
  const a = await runAuditBench(o.auditRows, 200);
  o.progress?.(`scaling: audit verify ${a.verify.rowsPerSec} rows/s`);
  return {
    tokenRead,
    rewrap: {
      db: "postgres",
      records: rewrap.records,
      batchSize: rewrap.batchSize,
      recordsPerSec: rewrap.recordsPerSec,
      seconds: rewrap.seconds,
    },
    auditVerify: {
      db: "postgres",
      rows: a.verify.checked,
      rowsPerSec: a.verify.rowsPerSec,
      ms: a.verify.ms,
      valid: a.verify.valid,
      writeEventsPerSec: a.write.eventsPerSec,
    },
  };
}

if (import.meta.main) {
  console.log(
    JSON.stringify(
      await runScaling({
        sizes: [10_000, 100_000],
        concurrency: 64,
        durationSec: 3,
        rewrapRecords: 5000,
        auditRows: 20_000,
        progress: console.error,
      }),
      null,
      2,
    ),
  );
  (await import("./seed.ts")).closeSealWorkers();
}
