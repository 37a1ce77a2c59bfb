-- DropIndex
DROP INDEX "oauth_tokens_userId_idx";
