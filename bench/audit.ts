/**
 * Audit log throughput on PostgreSQL: group-commit writes (many concurrent callers) and the
 * streaming verifier, over 200k+ rows in a throwaway database. `bun bench/audit.ts [rows]`.
 * Reports numbers; never asserts on them.
 */
import { createTestDatabase } from "../test/support/databases.ts";
import { generateMasterKeyPair, signPayload } from "../src/crypto/index.ts";
import { createAuditWriter } from "../src/audit/writer.ts";
import { verifyAuditLog } from "../src/audit/verify.ts";
import { createLogger } from "../src/log.ts";
import { systemClock } from "../src/clock.ts";

export async function runAuditBench(rows = 200_000, callers = 500) {
  const db = await createTestDatabase("postgres");
  try {
    const pair = await generateMasterKeyPair({ kid: "1" });
    const audit = createAuditWriter({
      db,
      clock: systemClock,
      log: createLogger("silent"),
      signer: (p, typ) => signPayload(p, pair.privateJwk, { kid: "1", typ }),
      checkpointEvery: 1000,
    });
    const perCaller = Math.ceil(rows / callers);
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: callers }, async (_, c) => {
        for (let i = 0; i < perCaller; i++) {
          await audit.record({
            eventType: "ACCESS_GRANTED",
            actor: `requester-${c}`,
            target: `token:gmail:user-${i}`,
            startTime: 1_700_000_000_000,
            endTime: 1_700_003_600_000,
            success: true,
            details: { accessRequestId: crypto.randomUUID(), policyId: "p-1", keyCount: 3 },
          });
        }
      }),
    );
    await audit.close();
    const writeMs = performance.now() - t0;
    const s = audit.stats();
    const v = await verifyAuditLog(db, { publicKeys: (kid) => (kid === "1" ? pair.publicJwk : undefined) });
    return {
      write: {
        events: s.events,
        rows: s.rows,
        batches: s.batches,
        ms: Math.round(writeMs),
        eventsPerSec: Math.round((s.events * 1000) / writeMs),
      },
      verify: {
        valid: v.valid,
        checked: v.checked,
        ms: v.elapsedMs,
        rowsPerSec: Math.round((v.checked * 1000) / Math.max(1, v.elapsedMs)),
      },
    };
  } finally {
    await db.close();
  }
}

if (import.meta.main) console.log(await runAuditBench(Number(process.argv[2] ?? 200_000)));
