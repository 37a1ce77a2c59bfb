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
import { resolveKek } from "./keys/kek.ts";
import { createKeyService, type ManagedKeyService } from "./keys/service.ts";
import { oauthTokenRewrappable } from "./tokens/rewrap.ts";

export interface Runtime {
  config: Config;
  db: Database;
  log: Logger;
  keys: ManagedKeyService;
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
  let keys: ManagedKeyService;
  try {
    if (opts.migrate ?? config.migrateOnStart) {
      const applied = await applyMigrations(db);
      if (applied.length > 0) log.info("migrations applied", { applied });
    }
    // A wrong KEK (KekMismatchError) stops startup here, naming both fingerprints.
    const { kek, kekId } = resolveKek(config, log);
    keys = await createKeyService({ db, kek, kekId, sliceSeconds: config.sliceSeconds, log: log.child({ component: "keys" }), rewrappables: [oauthTokenRewrappable(db)] });
  } catch (err) {
    if (ownsDb) await db.close();
    throw err;
  }
  const closers: Array<() => Promise<void>> = [async () => keys.close()];
  return {
    config,
    db,
    log,
    keys,
    appDeps: () => ({ config, db, log, keys, readiness: [{ name: "masterKey", check: () => keys.health() }] }),
    async close() {
      for (const close of closers.reverse()) await close();
      if (ownsDb) await db.close();
    },
  };
}
