/**
 * `bun run db:studio`: Prisma Studio on the configured database. PostgreSQL: Studio connects
 * directly. Embedded PGlite: Studio gets a loopback TCP port that leads to the database owner's
 * Unix socket (src/db/owner-socket.ts) — the running service's when it runs (Studio then shows
 * the live data), otherwise this script opens the data directory itself and is the owner.
 *
 *   bun run db:studio [--port 5555] [--browser none]
 */
import { parseArgs } from "node:util";
import { connect, createServer } from "node:net";
import { resolve } from "node:path";
import { loadConfig } from "../src/config.ts";
import { openDatabase } from "../src/db/database.ts";
import { applyMigrations } from "../src/db/migrate.ts";
import { ownerSocketPath } from "../src/db/owner-socket.ts";
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
    if (config.database.dataDir === null)
      throw new Error("memory:// has nothing to browse; unset DATABASE_URL for the embedded database");
    const db = await openDatabase(config.database, { throughOwner: true });
    if (!db.owner) await applyMigrations(db);
    const socketPath = ownerSocketPath(resolve(config.database.dataDir));
    // Studio speaks TCP; each of its connections is piped to the owner's socket.
    const open = new Set<{ destroy(): void }>();
    const proxy = createServer((client) => {
      const upstream = connect(socketPath);
      open.add(client).add(upstream);
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", end).on("close", end);
      upstream.on("error", end).on("close", end);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", () => r()));
    const port = (proxy.address() as { port: number }).port;
    url = `postgresql://postgres@127.0.0.1:${port}/postgres?sslmode=disable`;
    console.log(`serving ${db.description} over the PostgreSQL protocol at 127.0.0.1:${port} for Studio`);
    cleanup = async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => proxy.close(() => r()));
      await db.close();
    };
  }
  const studio = Bun.spawn(
    [process.execPath, "x", "prisma", "studio", "--port", values.port!, "--browser", values.browser!, "--url", url],
    {
      stdout: "inherit",
      stderr: "inherit",
      env: { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: "1", CHECKPOINT_DISABLE: "1" },
    },
  );
  const stop = () => studio.kill("SIGTERM");
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  const code = await studio.exited;
  await cleanup();
  return code;
});
