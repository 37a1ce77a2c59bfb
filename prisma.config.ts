// Prisma CLI configuration (generate, studio). The service itself never reads this file: it builds
// its client from src/config.ts with a driver adapter.
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.PRISMA_STUDIO_URL ?? process.env.DATABASE_URL ?? "postgresql://localhost/unused" },
});
