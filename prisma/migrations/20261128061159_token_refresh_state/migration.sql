-- AlterTable
ALTER TABLE "oauth_tokens" ADD COLUMN     "nextRefreshAt" TIMESTAMPTZ(3),
ADD COLUMN     "refreshFailures" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "refreshReason" TEXT;

-- Not expressible in Prisma: v1's transient state "refresh-failed" is "degraded" from now on.
UPDATE "oauth_tokens" SET "refreshStatus" = 'degraded' WHERE "refreshStatus" = 'refresh-failed';
