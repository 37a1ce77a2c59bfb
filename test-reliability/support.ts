/**
 * Shared pieces of the reliability suite: sizes from the environment (so CI can run a documented
 * subset), audit verification and the one-line figure each test prints. Service processes are
 * test/support/processes.ts.
 */
import { appendFileSync } from "node:fs";
import { openDatabase, type Database } from "../src/db/database.ts";
import { verifyAuditLog, type VerifyResult } from "../src/audit/verify.ts";
import { loadMasterPublicKeys } from "../src/keys/repository.ts";
import { liveChains } from "../src/audit/writer.ts";
import { readAnchorFile } from "../src/audit/anchors.ts";
import { testMacKey } from "../test/audit/helpers.ts";

/** A whole number from the environment (RELIABILITY_*), or the default of the full suite. */
export function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  if (!/^\d+$/.test(v)) throw new Error(`${name}: expected a whole number, got "${v}"`);
  return Number(v);
}

/**
 * Prints the test's one-line result (`fuzz: 10000 requests, 0 5xx`), and appends it to
 * RELIABILITY_FIGURES_FILE when set so a runner can collect every figure in one place.
 */
export function figure(line: string): void {
  console.log(`[reliability] ${line}`);
  const file = process.env.RELIABILITY_FIGURES_FILE;
  if (file) appendFileSync(file, `${line}\n`);
}

/** Verifies every audit chain of a database through its own connection (against an anchor log when given). */
export async function verifyAudit(db: Database, anchorFile?: string): Promise<VerifyResult> {
  const anchors = anchorFile ? await readAnchorFile(anchorFile) : { entries: [], malformed: [] };
  return verifyAuditLog(db, {
    ...(await loadMasterPublicKeys(db, testMacKey)),
    liveChains: (ids) => liveChains(db, ids),
    anchors: anchors.entries,
    malformedAnchorLines: anchors.malformed,
  });
}

/** Opens a database by URL for checks from the test process (PostgreSQL or an on-disk PGlite). */
export async function openForCheck(
  target: { kind: "postgres"; url: string } | { kind: "pglite"; dataDir: string },
): Promise<Database> {
  return openDatabase(target);
}

/** `fetch` that never throws: a refused or reset connection is status 0. */
export async function tryFetch(url: string, init?: RequestInit): Promise<{ status: number; text: string }> {
  try {
    const res = await fetch(url, init);
    return { status: res.status, text: await res.text() };
  } catch (err) {
    return { status: 0, text: String(err) };
  }
}

export function bearer(key: string | null, extra: Record<string, string> = {}): Record<string, string> {
  return { ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
