/**
 * Rotation throughput: records/s re-encrypted by the OAuth token rewrappable (open + seal of both token
 * fields, one SELECT and one compare-and-set UPDATE per batch). PostgreSQL when DATABASE_URL names one,
 * else in-memory PGlite. `bun bench/rewrap.ts`; `runRewrapBench()` for `bun run bench`. Never asserts.
 */
import { kekFingerprint, generateKek } from "../src/crypto/index.ts";
import { openDatabase, type DatabaseTarget } from "../src/db/database.ts";
import { applyMigrations } from "../src/db/migrate.ts";
import { createLogger } from "../src/log.ts";
import { runRewrap } from "../src/keys/rewrap.ts";
import { createKeyService } from "../src/keys/service.ts";
import { sealTokens } from "../src/tokens/record.ts";
import { oauthTokenRewrappable } from "../src/tokens/rewrap.ts";

export interface RewrapBenchResult {
  database: string;
  records: number;
  batchSize: number;
  recordsPerSec: number;
  seconds: number;
  /** Process CPU (all threads: main + reseal workers) per record; steadier than the rate on a shared machine. */
  cpuUsPerRecord: number;
}

/** Seeds `records` token rows (both fields sealed) into a fresh schema, rotates, and times the rewrap. */
export async function runRewrapBench(
  opts: { target?: DatabaseTarget; records?: number; batchSize?: number } = {},
): Promise<RewrapBenchResult> {
  const records = opts.records ?? 20_000;
  const batchSize = opts.batchSize ?? 1000;
  const db = await openDatabase(opts.target ?? { kind: "pglite", dataDir: null });
  try {
    await applyMigrations(db);
    await db.prisma.oAuthToken.deleteMany({ where: { integration: "bench" } });
    const kek = generateKek();
    // A throwaway schema state for the bench: its own KEK needs its own master_keys rows.
    if ((await db.prisma.masterKey.count()) > 0)
      throw new Error("runRewrapBench needs a database without master keys (it creates its own)");
    const keys = await createKeyService({
      db,
      kek,
      kekId: kekFingerprint(kek),
      sliceSeconds: 3600,
      log: createLogger("silent"),
      rewrappables: [oauthTokenRewrappable(db)],
    });
    for (let start = 0; start < records; start += 1000) {
      const data = [];
      for (let i = start; i < Math.min(start + 1000, records); i++) {
        const userId = `bench-${i}`;
        const t = await sealTokens(
          keys,
          { integration: "bench", userId },
          { accessToken: `ya29.${i}-${"a".repeat(120)}`, refreshToken: `1//${i}-${"r".repeat(80)}` },
          1,
        );
        data.push({
          userId,
          integration: "bench",
          accessToken: t.accessToken,
          refreshToken: t.refreshToken,
          keyVersion: t.keyVersion,
          version: 1,
        });
      }
      await db.prisma.oAuthToken.createMany({ data });
    }
    await keys.rotate();
    const cpu = process.cpuUsage();
    const r = await runRewrap(keys, keys.rewrappables(), { batchSize });
    const used = process.cpuUsage(cpu);
    if (r.remaining !== 0 || r.moved !== records) throw new Error(`rewrap moved ${r.moved}/${records}`);
    keys.close();
    return {
      database: db.description,
      records,
      batchSize,
      recordsPerSec: Math.round(records / (r.elapsedMs / 1000)),
      seconds: Math.round(r.elapsedMs) / 1000,
      cpuUsPerRecord: Math.round((used.user + used.system) / records),
    };
  } finally {
    await db.close();
  }
}

if (import.meta.main) {
  const url = process.env.DATABASE_URL;
  console.log(await runRewrapBench(url?.startsWith("postgres") ? { target: { kind: "postgres", url } } : {}));
}
