/**
 * `bun run db:migration:new <name>`: writes prisma/migrations/<timestamp>_<name>/migration.sql
 * from the difference between the migration history and schema.prisma (Prisma's WASM engine,
 * with a throwaway in-memory PGlite as the shadow database). Writes nothing when they agree.
 */
import { diffHistoryToSchema } from "../src/db/migrate.ts";
import { writeMigration } from "../src/db/migration-files.ts";

const name = process.argv[2];
if (!name) {
  console.error("usage: bun run db:migration:new <name>   (e.g. add_token_labels)");
  process.exit(2);
}
const sql = await diffHistoryToSchema();
if (sql === null) {
  console.log("schema.prisma and the migration history agree: no migration written.");
} else {
  const dir = writeMigration(name, sql);
  console.log(`wrote prisma/migrations/${dir}/migration.sql`);
}
