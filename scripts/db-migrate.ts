/** `bun run db:migrate`: applies pending migrations to the configured database (under a lock). */
import { loadConfig } from "../src/config.ts";
import { openDatabase } from "../src/db/database.ts";
import { applyMigrations } from "../src/db/migrate.ts";
import { runScript } from "./lib/run-script.ts";

await runScript(async () => {
  const config = loadConfig();
  const db = await openDatabase(config.database, { throughOwner: true });
  try {
    const applied = await applyMigrations(db);
    console.log(
      applied.length === 0
        ? `${db.description}: up to date, nothing to apply`
        : `${db.description}: applied ${applied.length} migration(s): ${applied.join(", ")}`,
    );
  } finally {
    await db.close();
  }
});
