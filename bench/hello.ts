/**
 * The HTTP ceiling: a bare Bun + Hono app answering a small JSON, run as its own process
 * (`bun bench/hello.ts` prints `listening <url>`); `startHello()` spawns it for the bench.
 */
import { Hono } from "hono";
import { spawnAndWaitForUrl, type Spawned } from "./process.ts";

if (import.meta.main) {
  const app = new Hono();
  app.get("/hello", (c) => c.json({ hello: "world", ok: true }));
  const server = Bun.serve({ hostname: "127.0.0.1", port: Number(process.env.PORT ?? 0), fetch: app.fetch });
  console.log(`listening http://127.0.0.1:${server.port}`);
  process.on("SIGTERM", () => {
    server.stop(true);
    process.exit(0);
  });
}

export function startHello(): Promise<Spawned> {
  return spawnAndWaitForUrl(["bun", import.meta.path], {
    env: { ...process.env },
    match: /^listening (http:\/\/\S+)$/m,
  });
}
