/**
 * A requester's API keys on the requesters page: the key table's rows (revoke behind a second
 * click) and the issue form, whose secret is shown once, with a copy button, then removed.
 */
import type { ApiKeyView, Requester, Role } from "../../client/types.ts";
import type { PageContext } from "../context.ts";
import { badge, blankToUndefined, field, fmtTime, h, isoFromLocal, replace } from "../dom.ts";
import { confirmAction } from "../confirm.ts";
import { clearErrors, showErrors } from "../errors.ts";
import { describeError } from "../errors.ts";

const ROLES = ["admin", "writer", "reader"] as const satisfies readonly Role[];

export function keyRow(ctx: PageContext, r: Requester, k: ApiKeyView, reload: () => void): HTMLTableRowElement {
  const cell = h(
    "td",
    null,
    k.enabled
      ? confirmAction(ctx, {
          label: "Revoke…",
          confirmLabel: "Revoke now",
          danger: true,
          run: async () => {
            await ctx.client.revokeApiKey(r.id, k.keyId);
            ctx.notify(`Revoked key ${k.keyId}.`);
            reload();
          },
        })
      : null,
  );
  const expired = k.expiresAt !== null && Date.parse(k.expiresAt) <= Date.now();
  return h(
    "tr",
    { data: { keyId: k.keyId } },
    h("td", { class: "mono" }, k.keyId),
    h("td", null, k.name ?? "—"),
    h(
      "td",
      null,
      k.roles.map((role) => badge(role, "info")),
    ),
    h("td", null, !k.enabled ? badge("revoked", "muted") : expired ? badge("expired", "warn") : badge("active", "ok")),
    h("td", null, fmtTime(k.expiresAt)),
    h("td", null, fmtTime(k.lastUsedAt)),
    h("td", null, fmtTime(k.createdAt)),
    cell,
  );
}

export function issueForm(
  ctx: PageContext,
  r: Requester,
  secretSlot: HTMLElement,
  reload: () => void,
): HTMLFormElement {
  const name = h("input", { type: "text", autocomplete: "off", placeholder: "ci-deploy" });
  const expires = h("input", { type: "datetime-local" });
  const roleBoxes = ROLES.map((role) => h("input", { type: "checkbox", value: role, checked: role === "reader" }));
  const form: HTMLFormElement = h(
    "form",
    {
      class: "stack",
      novalidate: true,
      data: { form: "issue-key" },
      onsubmit: async (e: SubmitEvent) => {
        e.preventDefault();
        clearErrors(form);
        try {
          const created = await ctx.client.createApiKey(r.id, {
            roles: roleBoxes.filter((b) => b.checked).map((b) => b.value as Role),
            name: blankToUndefined(name.value),
            expiresAt: isoFromLocal(expires.value),
          });
          form.reset();
          replace(
            secretSlot,
            secretBox(created.keyId, created.apiKey, () => replace(secretSlot)),
          );
          reloadKeysOnly();
        } catch (err) {
          showErrors(form, err);
        }
      },
    },
    h(
      "fieldset",
      { class: "field", data: { field: "roles" } },
      h("legend", null, "Roles"),
      h(
        "div",
        { class: "checks" },
        roleBoxes.map((b) => h("label", { class: "check" }, b, ` ${b.value}`)),
      ),
      h("div", { class: "field-error", role: "alert" }),
    ),
    h(
      "div",
      { class: "row" },
      field("Key name (optional)", name, { name: "name" }),
      field("Expires (optional, your local time)", expires, { name: "expiresAt" }),
    ),
    h("p", { class: "form-error", role: "alert" }),
    h("button", { type: "submit", class: "primary" }, "Issue key"),
  );
  // Re-render the key table but keep the secret box: rebuild only rows, not the whole panel.
  function reloadKeysOnly() {
    void ctx.client.getRequester(r.id).then(
      (fresh) => {
        if (ctx.isStale()) return;
        const tbody = form.closest(".detail")?.querySelector("tbody");
        if (tbody)
          replace(
            tbody,
            (fresh.apiKeys ?? []).map((k) => keyRow(ctx, fresh, k, reload)),
          );
      },
      (err) => ctx.notify(describeError(err), "bad"),
    );
  }
  return form;
}

/** The one place a secret enters the DOM: a freshly issued key, until "Done" removes it. */
function secretBox(keyId: string, apiKey: string, done: () => void): HTMLElement {
  let secret = apiKey;
  const code = h("code", { class: "secret" }, secret);
  const copied = h("span", { class: "muted", role: "status" });
  const copy = h(
    "button",
    {
      type: "button",
      class: "primary",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(secret);
          replace(copied, "Copied.");
        } catch {
          const range = document.createRange();
          range.selectNodeContents(code);
          getSelection()?.removeAllRanges();
          getSelection()?.addRange(range);
          replace(copied, "Select-all done: press Ctrl+C / ⌘C.");
        }
      },
    },
    "Copy",
  );
  return h(
    "div",
    { class: "secret-box", role: "alert" },
    h(
      "p",
      null,
      h("strong", null, `New API key ${keyId}. `),
      "Copy it now: it is shown this once and cannot be retrieved later.",
    ),
    code,
    h(
      "div",
      { class: "row" },
      copy,
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            secret = "";
            done();
          },
        },
        "Done, hide it",
      ),
      copied,
    ),
  );
}
