/**
 * `bun run db:generate`: `prisma generate` on a network that cannot download Prisma's native
 * schema engine. Generate only checks that the engine file exists, so we point it at a harmless
 * executable; generation itself is done by the CLI's bundled WASM.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const stub = process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? (existsSync("/bin/true") ? "/bin/true" : "/usr/bin/true");
const proc = Bun.spawn([process.execPath, "x", "prisma", "generate"], {
  cwd: root,
  env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: stub, PRISMA_HIDE_UPDATE_MESSAGE: "1", CHECKPOINT_DISABLE: "1" },
  stdout: "inherit",
  stderr: "inherit",
});
process.exit(await proc.exited);
