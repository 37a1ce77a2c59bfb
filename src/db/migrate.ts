/**
 * Applies pending migrations (under a lock, so processes starting together do not race) and
 * computes the difference between the migration history and `schema.prisma`.
 */
import { PGlite } from "@electric-sql/pglite";
import { PrismaPGlite } from "pglite-prisma-adapter";
import { withSchemaEngine, emptySchemaFilter } from "./schema-engine.ts";
import { readMigrationList, readSchema, schemaPath } from "./migration-files.ts";
import type { Database } from "./database.ts";
import { dirname } from "node:path";

// Arbitrary constant shared by every chronokms process; distinct from the key Prisma's own
// engine uses, so the two can never deadlock each other.
const MIGRATION_LOCK_KEY = 0x6368726f6e6f6b6dn & 0x7fffffffffffffffn; // "chronokm"

/** Applies every migration not yet recorded in `_prisma_migrations`; returns the names applied. */
export async function applyMigrations(db: Database, list = readMigrationList()): Promise<string[]> {
  const run = () =>
    withSchemaEngine(db.migrationAdapter(), async (engine) => {
      const out = await engine.applyMigrations({ migrationsList: list, filters: emptySchemaFilter });
      return out.appliedMigrationNames;
    });
  if (!db.pool) return run();
  // Session-level advisory lock held on one dedicated connection for the whole run.
  const client = await db.pool.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY.toString()]);
    try {
      return await run();
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY.toString()]);
    }
  } finally {
    client.release();
  }
}

/**
 * The SQL that would bring a database at the head of the migration history to `schema.prisma`,
 * or null when they agree. Replays the history into a throwaway in-memory PGlite (the shadow
 * database) and lets the engine diff it against the datamodel.
 */
export async function diffHistoryToSchema(list = readMigrationList(), schema = readSchema()): Promise<string | null> {
  const shadow = new PGlite();
  await shadow.waitReady;
  try {
    return await withSchemaEngine(new PrismaPGlite(shadow), async (engine) => {
      if (list.migrationDirectories.length > 0) {
        await engine.applyMigrations({ migrationsList: list, filters: emptySchemaFilter });
      }
      const diff = await engine.diff({
        from: { tag: "schemaDatasource", files: schema.files, configDir: dirname(schemaPath) },
        to: { tag: "schemaDatamodel", files: schema.files },
        script: true,
        exitCode: true,
        filters: emptySchemaFilter,
      });
      return diff.exitCode === 0 || !diff.stdout ? null : diff.stdout;
    });
  } finally {
    await shadow.close();
  }
}
