/**
 * `bun run db:studio`: Prisma Studio on the configured database. PostgreSQL: Studio connects
 * directly. Embedded PGlite: we serve the data directory over the PostgreSQL wire protocol
 * (@electric-sql/pglite-socket) on loopback and point Studio at it. The service must be stopped
 * first: one PGlite data directory can only be open in one process (the lock file says so).
 *
 *   bun run db:studio [--port 5555] [--browser none]
 */
import { parseArgs } from "node:util";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { loadConfig } from "../src/config.ts";
import { openDatabase } from "../src/db/database.ts";
import { applyMigrations } from "../src/db/migrate.ts";
import { runScript } from "./lib/run-script.ts";

const { values } = parseArgs({
  options: { port: { type: "string", default: "5555" }, browser: { type: "string", default: "none" } },
});

await runScript(async () => {
  const config = loadConfig();
  let url: string;
  let cleanup = async () => {};
  if (config.database.kind === "postgres") {
    url = config.database.url;
  } else {
    if (config.database.dataDir === null) throw new Error("memory:// has nothing to browse; unset DATABASE_URL for the embedded database");
    const db = await openDatabase(config.database);
    await applyMigrations(db);
    const server = new PGLiteSocketServer({ db: db.pglite!, host: "127.0.0.1", port: 0 });
    await server.start();
    const conn = server.getServerConn();
    url = `postgresql://postgres@${conn}/postgres?sslmode=disable`;
    console.log(`serving ${db.description} over the PostgreSQL protocol at ${conn} for Studio`);
    cleanup = async () => {
      await server.stop();
      await db.close();
    };
  }
  const studio = Bun.spawn([process.execPath, "x", "prisma", "studio", "--port", values.port!, "--browser", values.browser!, "--url", url], {
    stdout: "inherit",
    stderr: "inherit",
    env: { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: "1", CHECKPOINT_DISABLE: "1" },
  });
  const stop = () => studio.kill("SIGTERM");
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  const code = await studio.exited;
  await cleanup();
  return code;
});
