-- AlterTable
ALTER TABLE "master_keys" ADD COLUMN     "legacyTokenEnvelopes" BOOLEAN NOT NULL DEFAULT false;

-- AlterTable
ALTER TABLE "oauth_tokens" ADD COLUMN     "forcedRefreshAt" TIMESTAMPTZ(3);

-- Added by hand (data, not schema): the master key versions that exist when key separation is
-- applied were created by the v1 code, so they may hold v1 token envelopes (ECDH-ES to slice
-- keys). Only these versions keep accepting that format, until a rotation re-seals their tokens.
UPDATE "master_keys" SET "legacyTokenEnvelopes" = true;
