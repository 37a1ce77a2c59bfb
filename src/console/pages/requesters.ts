/**
 * Requesters & API keys: create a requester, enable/disable it, issue an API key (the secret is
 * shown once, with a copy button, then removed from the page) and revoke keys.
 */
import type { ApiKeyView, Requester, Role } from "../../client/types.ts";
import type { Page, PageContext } from "../context.ts";
import { badge, fmtTime, h, isoFromLocal, replace, table, field } from "../dom.ts";
import { clearErrors, describeError, showErrors } from "../errors.ts";
import { CursorPager } from "../paging.ts";

const ROLES = ["admin", "writer", "reader"] as const satisfies readonly Role[];

const blankToUndefined = (s: string) => (s.trim() === "" ? undefined : s.trim());

export const requestersPage: Page = async (ctx) => {
  const { client, root } = ctx;
  const listSlot = h("div");
  const detailSlot = h("div", { class: "detail-slot" });
  const pager = new CursorPager();
  const filterInput = h("input", { type: "search", placeholder: "exact requester id" });

  async function loadList() {
    const page = await client.listRequesters({
      limit: 50,
      cursor: pager.current,
      requesterId: blankToUndefined(filterInput.value),
    });
    if (ctx.isStale()) return;
    const rows = page.items.map((r) =>
      h(
        "tr",
        { data: { requesterId: r.requesterId } },
        h("td", { class: "mono" }, r.requesterId),
        h("td", { class: "name" }, r.name),
        h("td", null, r.department ?? "—"),
        h("td", null, r.email ?? "—"),
        h("td", null, r.enabled ? badge("enabled", "ok") : badge("disabled", "muted")),
        h("td", null, fmtTime(r.createdAt)),
        h("td", null, h("button", { type: "button", class: "manage", onclick: () => void showDetail(r.id) }, "Manage")),
      ),
    );
    replace(
      listSlot,
      table(["Requester id", "Name", "Department", "Email", "Status", "Created", ""], rows, "No requesters match."),
      pager.controls(page.nextCursor, () => void loadList().catch(fail)),
    );
  }
  const fail = (err: unknown) => ctx.notify(describeError(err), "bad");

  async function showDetail(id: string) {
    const r = await client.getRequester(id);
    if (ctx.isStale()) return;
    replace(
      detailSlot,
      detailPanel(ctx, r, {
        reload: () => void showDetail(id).catch(fail),
        reloadList: () => void loadList().catch(fail),
      }),
    );
    detailSlot.scrollIntoView({ block: "nearest" });
  }

  const createForm = requesterForm(ctx, async (created) => {
    ctx.notify(`Created requester ${created.requesterId}.`);
    pager.reset();
    await loadList();
    await showDetail(created.id);
  });

  replace(
    root,
    h(
      "div",
      { class: "two-col" },
      h("section", { class: "panel" }, h("h2", null, "New requester"), createForm),
      h(
        "section",
        { class: "panel grow" },
        h(
          "div",
          { class: "panel-head" },
          h("h2", null, "Requesters"),
          h(
            "form",
            {
              class: "inline",
              onsubmit: (e: SubmitEvent) => {
                e.preventDefault();
                pager.reset();
                void loadList().catch(fail);
              },
            },
            h("label", { class: "sr-only", for: "requester-filter" }, "Filter by requester id"),
            Object.assign(filterInput, { id: "requester-filter" }),
            h("button", { type: "submit" }, "Filter"),
          ),
        ),
        listSlot,
      ),
    ),
    detailSlot,
  );
  await loadList();
};

function requesterForm(ctx: PageContext, onCreated: (r: Requester) => Promise<void>): HTMLFormElement {
  const requesterId = h("input", { type: "text", autocomplete: "off", placeholder: "billing-service" });
  const name = h("input", { type: "text", autocomplete: "off", placeholder: "Billing service" });
  const department = h("input", { type: "text", autocomplete: "off" });
  const email = h("input", { type: "email", autocomplete: "off" });
  const form: HTMLFormElement = h(
    "form",
    {
      class: "stack",
      novalidate: true,
      data: { form: "new-requester" },
      onsubmit: async (e: SubmitEvent) => {
        e.preventDefault();
        clearErrors(form);
        try {
          const created = await ctx.client.createRequester({
            requesterId: requesterId.value.trim(),
            name: name.value,
            department: blankToUndefined(department.value),
            email: blankToUndefined(email.value),
          });
          form.reset();
          await onCreated(created);
        } catch (err) {
          showErrors(form, err);
        }
      },
    },
    field("Requester id", requesterId, { name: "requesterId", hint: "A–Z a–z 0–9 . _ : @ + -, up to 128" }),
    field("Name", name, { name: "name" }),
    field("Department (optional)", department, { name: "department" }),
    field("Email (optional)", email, { name: "email" }),
    h("p", { class: "form-error", role: "alert" }),
    h("button", { type: "submit", class: "primary" }, "Create requester"),
  );
  return form;
}

function detailPanel(ctx: PageContext, r: Requester, on: { reload: () => void; reloadList: () => void }): HTMLElement {
  const { client } = ctx;
  const toggle = h(
    "button",
    {
      type: "button",
      onclick: async () => {
        toggle.disabled = true;
        try {
          await client.updateRequester(r.id, { enabled: !r.enabled });
          ctx.notify(`${r.enabled ? "Disabled" : "Enabled"} ${r.requesterId}.`);
          on.reload();
          on.reloadList();
        } catch (err) {
          ctx.notify(describeError(err), "bad");
          toggle.disabled = false;
        }
      },
    },
    r.enabled ? "Disable requester" : "Enable requester",
  );

  const secretSlot = h("div", { class: "secret-slot" });
  const keys = (r.apiKeys ?? []).map((k) => keyRow(ctx, r, k, on.reload));
  return h(
    "section",
    { class: "panel detail", data: { requester: r.requesterId } },
    h("div", { class: "panel-head" }, h("h2", null, "Requester ", h("span", { class: "mono" }, r.requesterId)), toggle),
    h(
      "dl",
      { class: "facts" },
      h("dt", null, "Name"),
      h("dd", { class: "name" }, r.name),
      h("dt", null, "Department"),
      h("dd", null, r.department ?? "—"),
      h("dt", null, "Email"),
      h("dd", null, r.email ?? "—"),
      h("dt", null, "Status"),
      h("dd", null, r.enabled ? badge("enabled", "ok") : badge("disabled", "muted")),
      h("dt", null, "Public key"),
      h("dd", null, r.publicKeyJwk ? "registered (grants are encrypted to it)" : "none"),
      h("dt", null, "Internal id"),
      h("dd", { class: "mono small" }, r.id),
    ),
    h("h3", null, "API keys"),
    table(["Key id", "Name", "Roles", "Status", "Expires", "Last used", "Created", ""], keys, "No API keys."),
    secretSlot,
    h("h3", null, "Issue an API key"),
    issueForm(ctx, r, secretSlot, on.reload),
  );
}

function keyRow(ctx: PageContext, r: Requester, k: ApiKeyView, reload: () => void): HTMLTableRowElement {
  const cell = h("td");
  const revoke = h("button", { type: "button", class: "danger", onclick: () => replace(cell, confirm) }, "Revoke…");
  const yes = h(
    "button",
    {
      type: "button",
      class: "danger",
      onclick: async () => {
        yes.disabled = true;
        try {
          await ctx.client.revokeApiKey(r.id, k.keyId);
          ctx.notify(`Revoked key ${k.keyId}.`);
          reload();
        } catch (err) {
          ctx.notify(describeError(err), "bad");
          replace(cell, revoke);
        }
      },
    },
    "Revoke now",
  );
  const confirm = h(
    "span",
    { class: "confirm" },
    yes,
    h("button", { type: "button", onclick: () => replace(cell, revoke) }, "Cancel"),
  );
  replace(cell, k.enabled ? revoke : null);
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

function issueForm(ctx: PageContext, r: Requester, secretSlot: HTMLElement, reload: () => void): HTMLFormElement {
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
