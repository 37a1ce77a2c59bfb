/**
 * Requesters & API keys: create a requester, enable/disable it, issue an API key (the secret is
 * shown once, with a copy button, then removed from the page) and revoke keys.
 */
import type { Requester } from "../../client/types.ts";
import type { Page, PageContext } from "../context.ts";
import { badge, blankToUndefined, fmtTime, h, replace, table, field } from "../dom.ts";
import { issueForm, keyRow } from "./requester-keys.ts";
import { clearErrors, describeError, showErrors } from "../errors.ts";
import { CursorPager } from "../paging.ts";

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
