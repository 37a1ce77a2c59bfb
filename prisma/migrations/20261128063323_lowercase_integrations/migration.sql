-- AlterTable
ALTER TABLE "oauth_tokens" ADD COLUMN     "integrationCtx" TEXT;

-- Added by hand (data + a constraint Prisma cannot express): v1 stored integration names as
-- given, so a mixed-case row ("Gmail") was unreachable through the API, which canonicalises names
-- to lower case. Such rows are lower-cased here; their ciphertexts name the old spelling in their
-- contexts, so that spelling is kept in "integrationCtx" until the next re-seal (rewrap, refresh
-- or store) writes contexts under the lower-case name and clears it.
-- A user holding the same integration in two spellings ("Gmail" and "gmail") cannot be merged
-- without choosing one token: the migration then fails with this message and changes nothing;
-- delete the unwanted row(s) and migrate again.
DO $$
DECLARE
  clashes TEXT;
BEGIN
  SELECT string_agg(format('%L/%L', "userId", lower(integration)), ', ')
    INTO clashes
    FROM (SELECT "userId", lower(integration) AS integration FROM "oauth_tokens"
           GROUP BY "userId", lower(integration) HAVING count(*) > 1) AS c;
  IF clashes IS NOT NULL THEN
    RAISE EXCEPTION 'oauth_tokens holds the same integration in different letter cases for: % (userId/integration). Delete the unwanted row(s) (DELETE FROM oauth_tokens WHERE "userId" = ... AND integration = ...) and run the migration again.', clashes;
  END IF;
END $$;

UPDATE "oauth_tokens" SET "integrationCtx" = integration, integration = lower(integration) WHERE integration <> lower(integration);

ALTER TABLE "oauth_tokens" ADD CONSTRAINT "oauth_tokens_integration_lower_case" CHECK (integration = lower(integration));
