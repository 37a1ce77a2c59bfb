/**
 * The webhook lists page like every list (limit, opaque cursor, { items, nextCursor }), on both
 * databases: following nextCursor visits every webhook and every delivery exactly once, in order,
 * and a cursor we did not issue is a 400.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { tokenTestApp, type TokenTestApp } from "../tokens/helpers.ts";

type Page<T> = { items: T[]; nextCursor: string | null };

describeEachDb("webhook list paging", (h) => {
  let a: TokenTestApp;
  beforeAll(async () => {
    a = await tokenTestApp(h.db, { env: { WEBHOOK_POLL_MS: "0" } });
  }, 60_000);
  afterAll(() => a?.close());

  async function all<T>(path: string, limit: number): Promise<{ items: T[]; pages: number }> {
    const items: T[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const sep = path.includes("?") ? "&" : "?";
      const res = await a.call(a.admin, "GET", `${path}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as Page<T>;
      expect(page.items.length).toBeLessThanOrEqual(limit);
      items.push(...page.items);
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null && pages < 20);
    return { items, pages };
  }

  test("webhooks and their deliveries page with limit and an opaque cursor", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await a.call(a.admin, "POST", "/v1/webhooks", {
        url: `http://127.0.0.1:9/hook-${i}`,
        events: ["token.deleted"],
      });
      expect(res.status).toBe(201);
      ids.push(((await res.json()) as { id: string }).id);
    }
    const hooks = await all<{ id: string }>("/v1/webhooks", 2);
    expect(hooks.pages).toBe(2);
    expect(hooks.items.map((w) => w.id)).toEqual(ids);

    for (let i = 0; i < 5; i++) {
      expect((await a.call(a.writer, "PUT", `/v1/tokens/github/page-${i}`, { accessToken: "x" })).status).toBe(201);
      expect((await a.call(a.writer, "DELETE", `/v1/tokens/github/page-${i}`)).status).toBe(204);
    }
    const stored = await h.db.prisma.webhookDelivery.findMany({
      where: { webhookId: ids[0]! },
      orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    });
    expect(stored).toHaveLength(5);
    const deliveries = await all<{ id: string }>(`/v1/webhooks/${ids[0]}/deliveries`, 2);
    expect(deliveries.pages).toBe(3);
    expect(deliveries.items.map((d) => d.id)).toEqual(stored.map((d) => d.id));
    const one = (await (await a.call(a.admin, "GET", `/v1/webhooks/${ids[0]}/deliveries?limit=5`)).json()) as Page<{
      id: string;
    }>;
    expect(one.nextCursor).toBeNull();

    for (const path of ["/v1/webhooks", `/v1/webhooks/${ids[0]}/deliveries`]) {
      for (const cursor of ["zzz", stored[0]!.id.replaceAll("-", ""), "W10"]) {
        const res = await a.call(a.admin, "GET", `${path}?cursor=${cursor}`);
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: { message: string } }).error.message).toContain("cursor");
      }
    }
  });
});
