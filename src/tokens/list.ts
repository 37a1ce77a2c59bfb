/** Listing token records: metadata only, each row admitted by policy as a read of it would be. */
import type { Principal } from "../access/principal.ts";
import { metadataOf, type TokenMetadata } from "./metadata.ts";
import type { TokenRow } from "./record.ts";
import type { ListTokensQuery } from "./schemas.ts";
import type { VaultContext } from "./vault-deps.ts";

/** Rows read per statement while a list scans for admitted rows. */
const LIST_SCAN_CHUNK = 200;

/**
 * Ordered by id; never a token value. A decision: each record of the page is evaluated against
 * the caller's policies as a read of it would be (without an access_requests row each), only
 * admitted ones are returned, and the request is one TOKENS_LISTED audit row (filter, count). A
 * page holds `limit` admitted items unless the rows end; nextCursor is the id of the page's last
 * (admitted) item, never of a row the caller was denied.
 */
export async function listTokens(
  v: VaultContext,
  principal: Principal,
  q: ListTokensQuery & { purpose?: string },
): Promise<{ items: TokenMetadata[]; nextCursor: string | null }> {
  const now = v.clock.now();
  const who = { requesterId: principal.requesterId, department: principal.department };
  const allowed = (r: TokenRow) =>
    v.decider.evaluate(who, {
      resource: { type: "token", integration: r.integration, userId: r.userId },
      timeRange: { start: now, end: now },
      ...(q.purpose ? { purpose: q.purpose } : {}),
    }).allowed;
  // The cursor may only ever name an admitted row (a denied row's id would leak its creation
  // time, and its mere presence how many rows a filter matches): scan on, in chunks, until one
  // admitted row past the page is found or the rows end.
  const want = q.limit + 1;
  const chunk = Math.max(want, LIST_SCAN_CHUNK);
  const admitted: TokenRow[] = [];
  let after = q.cursor;
  let examined = 0;
  for (;;) {
    const rows = await v.repo.page({ userId: q.userId, integration: q.integration }, after, chunk);
    for (const r of rows) {
      examined++;
      if (allowed(r) && admitted.push(r) >= want) break;
    }
    if (admitted.length >= want || rows.length < chunk) break;
    after = rows.at(-1)!.id;
  }
  const page = admitted.slice(0, q.limit);
  await v.audit.record({
    eventType: "TOKENS_LISTED",
    actor: principal.requesterId,
    target: "tokens",
    success: true,
    details: {
      filter: {
        userId: q.userId ?? null,
        integration: q.integration ?? null,
        cursor: q.cursor ?? null,
        limit: q.limit,
      },
      count: page.length,
      examined,
      keyId: principal.keyId,
    },
  });
  return {
    items: page.map((r) => metadataOf(r, now, v.refresher)),
    nextCursor: admitted.length > q.limit ? page.at(-1)!.id : null,
  };
}
