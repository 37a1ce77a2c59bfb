/**
 * Tokens: the OAuth token inventory, metadata only. Only the fields named here are rendered, so
 * even a server that sent more could not put a token value on the page. Listing needs the
 * `reader` role (roles do not imply each other), which the page says plainly when it is missing.
 */
import type { TokenMetadata } from "../../client/types.ts";
import { ChronoKmsError } from "../../client/errors.ts";
import type { Page } from "../context.ts";
import { badge, field, fmtTime, h, replace } from "../dom.ts";
import { pagedList } from "../list-view.ts";

const STATUS_TONE = { valid: "ok", expired: "warn", "needs-reauth": "bad" } as const;

export const tokensPage: Page = async (ctx) => {
  const { client, root } = ctx;
  const userId = h("input", { type: "text", autocomplete: "off" });
  const integration = h("input", { type: "text", autocomplete: "off" });

  const view = pagedList(ctx, {
    fields: [field("User id", userId, { name: "userId" }), field("Integration", integration, { name: "integration" })],
    query: (cursor) =>
      client.listTokens({
        userId: userId.value.trim() || undefined,
        integration: integration.value.trim() || undefined,
        limit: 50,
        cursor,
      }),
    headers: ["Integration", "User", "Status", "Expires", "Scope", "Refresh token", "Key", "Last used", "Updated"],
    row: (t: TokenMetadata) =>
      h(
        "tr",
        null,
        h("td", { class: "mono" }, t.integration),
        h("td", { class: "mono" }, t.userId),
        h("td", null, badge(t.status, STATUS_TONE[t.status] ?? "info")),
        h("td", null, fmtTime(t.expiresAt)),
        h("td", { class: "small" }, t.scope ?? "—"),
        h("td", null, t.hasRefreshToken ? "yes" : "no"),
        h("td", { class: "num" }, `v${t.keyVersion}`),
        h("td", null, fmtTime(t.lastUsed)),
        h("td", null, fmtTime(t.updatedAt)),
      ),
    empty: "No tokens match.",
    onError: (err, list) => {
      if (!(err instanceof ChronoKmsError && err.status === 403)) return false;
      replace(
        list,
        h(
          "p",
          { class: "notice" },
          "Listing tokens needs the reader role, and this admin key does not have it (roles do not imply each other). Sign in with a key that holds both admin and reader to see the inventory.",
        ),
      );
      return true;
    },
  });
  replace(
    root,
    h(
      "section",
      { class: "panel" },
      h("p", { class: "muted small" }, "Metadata only: token values are never listed."),
      view.filters,
      view.list,
    ),
  );
  await view.load();
};
