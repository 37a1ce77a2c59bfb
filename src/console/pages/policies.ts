/**
 * Policies: the list in evaluation order, a create/edit form whose errors are the API's own
 * validation messages placed next to the fields they name, enable/disable, delete, and a
 * simulate form that shows the decision and every policy's verdict.
 */
import type { Policy, PolicyScope } from "../../client/types.ts";
import type { Page, PageContext } from "../context.ts";
import { badge, fmtJson, h, replace, table } from "../dom.ts";
import { confirmAction } from "../confirm.ts";
import { describeError } from "../errors.ts";
import { loadPolicyTypes, policyEditor } from "./policy-editor.ts";
import { simulateForm } from "./policy-simulate.ts";

export const policiesPage: Page = async (ctx) => {
  const { client, root } = ctx;
  const listSlot = h("div");
  let policies: Policy[] = [];
  const editor = policyEditor(ctx, await loadPolicyTypes(ctx), () => void loadList().catch(fail));
  const simulator = simulateForm(ctx, () => policies);
  const fail = (err: unknown) => ctx.notify(describeError(err), "bad");

  async function loadList() {
    policies = (await client.listPolicies()).items;
    if (ctx.isStale()) return;
    const rows = policies.map((p) =>
      h(
        "tr",
        { data: { policyId: p.id, policyName: p.name } },
        h("td", { class: "num" }, String(p.priority)),
        h("td", { class: "name" }, p.name, p.description ? h("div", { class: "muted small" }, p.description) : null),
        h("td", null, badge(p.type, "info")),
        h("td", null, p.enabled ? badge("enabled", "ok") : badge("disabled", "muted")),
        h("td", { class: "mono small" }, scopeText(p.scope)),
        h("td", { class: "mono small" }, fmtJson(p.config, 120)),
        h("td", { class: "num" }, `v${p.version}`),
        h(
          "td",
          { class: "actions" },
          h("button", { type: "button", onclick: () => editor.edit(p) }, "Edit"),
          h(
            "button",
            {
              type: "button",
              class: "toggle",
              onclick: async () => {
                try {
                  await client.updatePolicy(p.id, { enabled: !p.enabled });
                  ctx.notify(`${p.enabled ? "Disabled" : "Enabled"} ${p.name}.`);
                  await loadList();
                } catch (err) {
                  fail(err);
                }
              },
            },
            p.enabled ? "Disable" : "Enable",
          ),
          deleteButton(ctx, p, () => void loadList().catch(fail)),
        ),
      ),
    );
    replace(
      listSlot,
      table(
        ["Priority", "Name", "Type", "Status", "Scope", "Config", "Version", ""],
        rows,
        "No policies: every request is denied (deny by default).",
      ),
    );
  }

  replace(
    root,
    h(
      "section",
      { class: "panel" },
      h(
        "div",
        { class: "panel-head" },
        h("h2", null, "Policies"),
        h(
          "span",
          { class: "muted small" },
          "Evaluated highest priority first; a request needs a whitelist that admits it and no policy that denies it.",
        ),
      ),
      listSlot,
    ),
    h(
      "div",
      { class: "two-col" },
      h("section", { class: "panel" }, editor.element),
      h("section", { class: "panel grow" }, h("h2", null, "Simulate a request"), simulator),
    ),
  );
  await loadList();
};

function scopeText(scope: PolicyScope | unknown): string {
  const s = (scope ?? {}) as PolicyScope;
  const parts = [
    s.resourceTypes ? `types: ${s.resourceTypes.join(", ")}` : null,
    s.integrations ? `integrations: ${s.integrations.join(", ")}` : null,
    s.requesters ? `requesters: ${s.requesters.join(", ")}` : null,
  ].filter(Boolean);
  return parts.length ? parts.join(" · ") : "every request";
}

function deleteButton(ctx: PageContext, p: Policy, reload: () => void): HTMLElement {
  return confirmAction(ctx, {
    label: "Delete…",
    confirmLabel: "Delete now",
    danger: true,
    run: async () => {
      await ctx.client.deletePolicy(p.id);
      ctx.notify(`Deleted ${p.name}.`);
      reload();
    },
  });
}
