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

export interface Runtime {
  config: Config;
  db: Database;
  log: Logger;
  appDeps(): AppDeps;
  close(): Promise<void>;
}

export async function createRuntime(config: Config, log: Logger, opts: { migrate?: boolean } = {}): Promise<Runtime> {
  const db = await openDatabase(config.database);
  try {
    if (opts.migrate ?? config.migrateOnStart) {
      const applied = await applyMigrations(db);
      if (applied.length > 0) log.info("migrations applied", { applied });
    }
  } catch (err) {
    await db.close();
    throw err;
  }
  const closers: Array<() => Promise<void>> = [];
  return {
    config,
    db,
    log,
    appDeps: () => ({ config, db, log }),
    async close() {
      for (const close of closers.reverse()) await close();
      await db.close();
    },
  };
}
