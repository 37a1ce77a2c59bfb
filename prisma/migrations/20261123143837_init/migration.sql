-- CreateTable
CREATE TABLE "master_keys" (
    "id" UUID NOT NULL,
    "version" INTEGER NOT NULL,
    "algorithm" TEXT NOT NULL DEFAULT 'EC',
    "curve" TEXT NOT NULL DEFAULT 'P-256',
    "publicKeyJwk" JSONB NOT NULL,
    "privateKeyJwe" TEXT NOT NULL,
    "kekId" TEXT NOT NULL,
    "sliceSeconds" INTEGER NOT NULL,
    "status" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "rotatedAt" TIMESTAMPTZ(3),
    "retiredAt" TIMESTAMPTZ(3),

    CONSTRAINT "master_keys_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "oauth_tokens" (
    "id" UUID NOT NULL,
    "userId" TEXT NOT NULL,
    "integration" TEXT NOT NULL,
    "accessToken" TEXT NOT NULL,
    "refreshToken" TEXT,
    "expiresAt" TIMESTAMPTZ(3),
    "scope" TEXT,
    "tokenType" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,
    "lastUsed" TIMESTAMPTZ(3),
    "issuedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "ipAddress" TEXT,
    "userAgent" TEXT,
    "keyVersion" INTEGER NOT NULL,
    "refreshStatus" TEXT NOT NULL DEFAULT 'ok',
    "version" INTEGER NOT NULL DEFAULT 1,

    CONSTRAINT "oauth_tokens_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "requesters" (
    "id" UUID NOT NULL,
    "requesterId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "department" TEXT,
    "email" TEXT,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "metadata" JSONB,
    "publicKeyJwk" JSONB,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "requesters_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "api_keys" (
    "id" UUID NOT NULL,
    "keyId" TEXT NOT NULL,
    "secretHash" TEXT NOT NULL,
    "requesterId" UUID NOT NULL,
    "name" TEXT,
    "roles" TEXT[],
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "expiresAt" TIMESTAMPTZ(3),
    "lastUsedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "policies" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "priority" INTEGER NOT NULL DEFAULT 0,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "scope" JSONB NOT NULL,
    "config" JSONB NOT NULL,
    "description" TEXT,
    "version" INTEGER NOT NULL DEFAULT 1,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "policies_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "access_requests" (
    "id" UUID NOT NULL,
    "requesterId" TEXT NOT NULL,
    "resourceType" TEXT NOT NULL,
    "resource" JSONB NOT NULL,
    "startTime" TIMESTAMPTZ(3) NOT NULL,
    "endTime" TIMESTAMPTZ(3) NOT NULL,
    "purpose" TEXT,
    "granted" BOOLEAN NOT NULL,
    "denialReason" TEXT,
    "policyIds" TEXT[],
    "policyId" TEXT,
    "keyCount" INTEGER,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "access_requests_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "audit_logs" (
    "id" UUID NOT NULL,
    "seq" BIGINT NOT NULL,
    "chainId" TEXT NOT NULL,
    "timestamp" BIGINT NOT NULL,
    "eventType" TEXT NOT NULL,
    "actor" TEXT NOT NULL,
    "target" TEXT,
    "startTime" BIGINT,
    "endTime" BIGINT,
    "success" BOOLEAN NOT NULL,
    "details" JSONB NOT NULL,
    "prevHash" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "audit_logs_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "master_keys_version_key" ON "master_keys"("version");

-- CreateIndex
CREATE INDEX "master_keys_status_idx" ON "master_keys"("status");

-- CreateIndex
CREATE INDEX "oauth_tokens_userId_idx" ON "oauth_tokens"("userId");

-- CreateIndex
CREATE INDEX "oauth_tokens_integration_idx" ON "oauth_tokens"("integration");

-- CreateIndex
CREATE INDEX "oauth_tokens_expiresAt_idx" ON "oauth_tokens"("expiresAt");

-- CreateIndex
CREATE INDEX "oauth_tokens_keyVersion_idx" ON "oauth_tokens"("keyVersion");

-- CreateIndex
CREATE UNIQUE INDEX "oauth_tokens_userId_integration_key" ON "oauth_tokens"("userId", "integration");

-- CreateIndex
CREATE UNIQUE INDEX "requesters_requesterId_key" ON "requesters"("requesterId");

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_keyId_key" ON "api_keys"("keyId");

-- CreateIndex
CREATE INDEX "api_keys_requesterId_idx" ON "api_keys"("requesterId");

-- CreateIndex
CREATE UNIQUE INDEX "policies_name_key" ON "policies"("name");

-- CreateIndex
CREATE INDEX "access_requests_requesterId_createdAt_idx" ON "access_requests"("requesterId", "createdAt");

-- CreateIndex
CREATE INDEX "access_requests_createdAt_idx" ON "access_requests"("createdAt");

-- CreateIndex
CREATE INDEX "audit_logs_timestamp_idx" ON "audit_logs"("timestamp");

-- CreateIndex
CREATE INDEX "audit_logs_eventType_timestamp_idx" ON "audit_logs"("eventType", "timestamp");

-- CreateIndex
CREATE INDEX "audit_logs_actor_timestamp_idx" ON "audit_logs"("actor", "timestamp");

-- CreateIndex
CREATE UNIQUE INDEX "audit_logs_chainId_seq_key" ON "audit_logs"("chainId", "seq");

-- AddForeignKey
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_requesterId_fkey" FOREIGN KEY ("requesterId") REFERENCES "requesters"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Additions Prisma cannot express (kept out of schema.prisma on purpose):

-- At most one active master key version, enforced by the database itself.
CREATE UNIQUE INDEX "master_keys_one_active" ON "master_keys" ("status") WHERE "status" = 'active';

-- audit_logs is append-only: the database refuses UPDATE, DELETE and TRUNCATE.
CREATE FUNCTION "audit_logs_refuse_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_logs is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER "audit_logs_append_only" BEFORE UPDATE OR DELETE ON "audit_logs"
  FOR EACH ROW EXECUTE FUNCTION "audit_logs_refuse_change"();
CREATE TRIGGER "audit_logs_no_truncate" BEFORE TRUNCATE ON "audit_logs"
  FOR EACH STATEMENT EXECUTE FUNCTION "audit_logs_refuse_change"();
