/**
 * List cursors name only rows the caller was admitted to (security review of #10), on both
 * databases: a denied caller learns neither a denied row's id (UUIDv7: its creation time) nor,
 * with `limit=1`, whether the victim has more tokens; an admitted caller still reaches every
 * admitted row however many denied rows lie between.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { decodeIdCursor } from "../../src/lib/keyset-cursor.ts";
import { describeEachDb } from "../support/databases.ts";
import { tokenTestApp, type TokenTestApp } from "./helpers.ts";

describeEachDb("token list cursors", (h) => {
  let a: TokenTestApp;
  beforeAll(async () => {
    a = await tokenTestApp(h.db);
  }, 60_000);
  afterAll(() => a?.close());

  const put = (i: string, u: string) => a.call(a.writer, "PUT", `/v1/tokens/${i}/${u}`, { accessToken: `t-${i}-${u}` });
  type Page = { items: Array<{ integration: string; userId: string }>; nextCursor: string | null };
  const list = async (key: string, query: string) => {
    const res = await a.call(key, "GET", `/v1/tokens?${query}`);
    expect(res.status).toBe(200);
    return (await res.json()) as Page;
  };

  test("a denied caller listing ?userId=victim&limit=1 gets no cursor (no id, no count) whether the victim has 1 or 2 tokens", async () => {
    await put("gmail", "victim1");
    await put("gmail", "victim2");
    await put("github", "victim2");
    expect(await list(a.stranger, "userId=victim1&limit=1")).toEqual({ items: [], nextCursor: null });
    expect(await list(a.stranger, "userId=victim2&limit=1")).toEqual({ items: [], nextCursor: null });
  });

  test("an admitted caller pages through every admitted row; no cursor is a denied row's id", async () => {
    // 2 admitted (slack), 5 denied (github) in between, in id order.
    await put("slack", "mixed");
    for (let i = 0; i < 5; i++) await put("github", `mixed-${i}`);
    await put("slack", "mixed-z");
    const deniedIds = new Set(
      (await h.db.prisma.oAuthToken.findMany({ where: { integration: "github" } })).map((r) => r.id),
    );
    const strangerId = (
      await h.db.prisma.requester.findFirstOrThrow({ where: { requesterId: { startsWith: "svc-stranger" } } })
    ).requesterId;
    expect(
      (
        await a.call(a.admin, "POST", "/v1/policies", {
          name: "slack-only",
          type: "whitelist",
          scope: { integrations: ["slack"] },
          config: { requesters: [strangerId] },
        })
      ).status,
    ).toBe(201);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const page: Page = await list(a.stranger, `limit=1${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...page.items.map((i) => `${i.integration}/${i.userId}`));
      // The cursor is opaque on the wire; the row id it carries must not be a denied row's.
      if (page.nextCursor !== null) expect(deniedIds.has(decodeIdCursor(page.nextCursor))).toBe(false);
      cursor = page.nextCursor;
      if (!cursor) break;
    }
    expect(seen).toEqual(["slack/mixed", "slack/mixed-z"]);
  });
});
