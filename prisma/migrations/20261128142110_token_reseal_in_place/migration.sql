-- A rotation re-seals every token row: both envelopes, keyVersion and the row version, in
-- statements of a few hundred rows. Two things made each such UPDATE write a new entry in every
-- index of the table instead of updating the row in place (HOT):
--
-- 1. keyVersion was indexed, and an update that changes an indexed column is never HOT. No query
--    uses that index: counts per version and the rewrap's pending test scan the table anyway (the
--    test ORs keyVersion with checks on the envelopes themselves).
DROP INDEX "oauth_tokens_keyVersion_idx";

-- 2. (Added by hand: a storage parameter, which Prisma does not model.) With fillfactor 80 a page
--    of ~1.2 KB rows kept room for one new row version, so a re-seal of all its rows moved all but
--    one of them to other pages. At 50 a page keeps as much room as its rows take, so each of them
--    can be rewritten once in place; dead versions are pruned from the page before the next
--    rotation. A 20,000-row re-seal UPDATE costs PostgreSQL ~25% less CPU here; the table takes
--    up to twice the pages (only scans, such as the per-version counts, see that). Applies to
--    pages written from now on.
ALTER TABLE "oauth_tokens" SET (fillfactor = 50);
