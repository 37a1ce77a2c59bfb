/**
 * The naive baseline's process (see bench/naive.ts for what it is and why it is fair): Bun + Hono,
 * Prisma `findUnique` through @prisma/adapter-pg, WebCrypto AES-256-GCM decrypt of both fields.
 * Env: DATABASE_URL, NAIVE_KEY (hex AES-256 key), PORT (default: any). Prints `listening <url>`.
 */
import { Hono } from "hono";
import pg from "pg";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../src/db/generated/client.ts";

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
const key = await crypto.subtle.importKey("raw", Buffer.from(process.env.NAIVE_KEY ?? "", "hex"), "AES-GCM", false, [
  "decrypt",
]);
const decrypt = async (stored: string) => {
  const raw = Buffer.from(stored, "base64");
  const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: raw.subarray(0, 12) }, key, raw.subarray(12));
  return new TextDecoder().decode(plain);
};
const app = new Hono();
app.get("/v1/tokens/:integration/:userId", async (c) => {
  const { integration, userId } = c.req.param();
  const row = await prisma.oAuthToken.findUnique({ where: { userId_integration: { userId, integration } } });
  if (!row) return c.json({ error: "not found" }, 404);
  const [accessToken, refreshToken] = await Promise.all([
    decrypt(row.accessToken),
    row.refreshToken === null ? null : decrypt(row.refreshToken),
  ]);
  return c.json({
    integration: row.integration,
    userId: row.userId,
    accessToken,
    refreshToken,
    expiresAt: row.expiresAt,
    scope: row.scope,
    tokenType: row.tokenType,
  });
});
const server = Bun.serve({ hostname: "127.0.0.1", port: Number(process.env.PORT ?? 0), fetch: app.fetch });
console.log(`listening http://127.0.0.1:${server.port}`);
process.on("SIGTERM", async () => {
  server.stop(true);
  await prisma.$disconnect();
  await pool.end();
  process.exit(0);
});
