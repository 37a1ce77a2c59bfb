/**
 * Builds everything a process needs from its config: the database (migrated unless turned off)
 * and the services above it. Used by the server, the scripts and the tests, so they all run the
 * same wiring.
 */
import type { Config } from "./config.ts";
import { openDatabase, type Database } from "./db/database.ts";
import { applyMigrations } from "./db/migrate.ts";
import type { Logger } from "./log.ts";
import type { AppDeps } from "./app.ts";
import { systemClock } from "./clock.ts";
import { createAuditWriter, type AuditWriter } from "./audit/writer.ts";
import type { CheckpointSigner } from "./audit/chain.ts";

export interface Runtime {
  config: Config;
  db: Database;
  log: Logger;
  audit: AuditWriter;
  appDeps(): AppDeps;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  /** Run migrations at start; defaults to config.migrateOnStart. */
  migrate?: boolean;
  /** Use this already-open database instead of opening config.database (tests). */
  db?: Database;
  /** Whether close() closes the database too (default: only when the runtime opened it). */
  ownsDb?: boolean;
}

export async function createRuntime(config: Config, log: Logger, opts: RuntimeOptions = {}): Promise<Runtime> {
  const db = opts.db ?? (await openDatabase(config.database));
  const ownsDb = opts.ownsDb ?? opts.db === undefined;
  try {
    if (opts.migrate ?? config.migrateOnStart) {
      const applied = await applyMigrations(db);
      if (applied.length > 0) log.info("migrations applied", { applied });
    }
  } catch (err) {
    if (ownsDb) await db.close();
    throw err;
  }
  // THE place the audit checkpoint signer plugs in: `(payload, typ) => keys.sign(payload, typ)`
  // once the KeyService is built here. Until then checkpoints are written unsigned.
  const auditSigner: CheckpointSigner | undefined = undefined;
  const audit = createAuditWriter({
    db,
    clock: systemClock,
    log: log.child({ component: "audit" }),
    signer: auditSigner,
    checkpointEvery: config.auditCheckpointEvery,
    writeTimeoutMs: config.auditWriteTimeoutMs,
  });
  const closers: Array<() => Promise<void>> = [];
  return {
    config,
    db,
    log,
    audit,
    appDeps: () => ({ config, db, log, audit }),
    async close() {
      for (const close of closers.reverse()) await close();
      // Last before the database: services above may still record while they shut down.
      await audit.close();
      if (ownsDb) await db.close();
    },
  };
}
