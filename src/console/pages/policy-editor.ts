/**
 * The policy create/edit form. The type list and each type's starting config come from the
 * server's registry (GET /v1/policies/types), so a new policy type needs no console change; the
 * form's errors are the API's own validation messages, placed next to the fields they name.
 */
import type { Policy, PolicyInput, PolicyScope } from "../../client/types.ts";
import type { PageContext } from "../context.ts";
import { field, h, replace } from "../dom.ts";
import { clearErrors, showErrors } from "../errors.ts";

/** One entry of GET /v1/policies/types. */
export interface PolicyTypeInfo {
  type: string;
  summary: string;
  example: unknown;
}

const list = (s: string) =>
  s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);

export async function loadPolicyTypes(ctx: PageContext): Promise<PolicyTypeInfo[]> {
  return (await ctx.client.request<{ items: PolicyTypeInfo[] }>("GET", "/v1/policies/types")).items;
}

export function policyEditor(ctx: PageContext, types: readonly PolicyTypeInfo[], reload: () => void) {
  const template = (t: string) => JSON.stringify(types.find((i) => i.type === t)?.example ?? {}, null, 2);
  const first = types[0]?.type ?? "";
  let editing: Policy | null = null;
  const title = h("h2", null, "New policy");
  const name = h("input", { type: "text", autocomplete: "off", placeholder: "billing may read" });
  const type = h(
    "select",
    null,
    types.map((t) => h("option", { value: t.type, title: t.summary }, t.type)),
  );
  const priority = h("input", { type: "number", value: "0", step: "1" });
  const enabled = h("input", { type: "checkbox", checked: true });
  const description = h("input", { type: "text", autocomplete: "off" });
  const resourceTypes = (["token", "timeslice"] as const).map((t) => h("input", { type: "checkbox", value: t }));
  const integrations = h("input", { type: "text", autocomplete: "off", placeholder: "gmail, github (empty = any)" });
  const requesters = h("input", { type: "text", autocomplete: "off", placeholder: "requester ids (empty = any)" });
  const config = h("textarea", { rows: "7", spellcheck: "false", class: "mono" });
  config.value = template(first);
  type.addEventListener("change", () => {
    if (!editing || editing.type !== type.value) config.value = template(type.value);
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Create policy");
  const cancel = h("button", { type: "button", hidden: true, onclick: () => reset() }, "Cancel edit");

  function reset() {
    editing = null;
    form.reset();
    clearErrors(form);
    config.value = template(first);
    replace(title, "New policy");
    replace(submit, "Create policy");
    cancel.hidden = true;
  }

  function edit(p: Policy) {
    editing = p;
    clearErrors(form);
    name.value = p.name;
    type.value = p.type;
    priority.value = String(p.priority);
    enabled.checked = p.enabled;
    description.value = p.description ?? "";
    const s = (p.scope ?? {}) as PolicyScope;
    for (const b of resourceTypes) b.checked = s.resourceTypes?.includes(b.value as "token") ?? false;
    integrations.value = (s.integrations ?? []).join(", ");
    requesters.value = (s.requesters ?? []).join(", ");
    config.value = JSON.stringify(p.config, null, 2);
    replace(title, "Edit policy ", h("span", { class: "mono" }, p.name));
    replace(submit, "Save changes");
    cancel.hidden = false;
    form.scrollIntoView({ block: "nearest" });
    name.focus();
  }

  const form: HTMLFormElement = h(
    "form",
    {
      class: "stack",
      novalidate: true,
      data: { form: "policy" },
      onsubmit: async (e: SubmitEvent) => {
        e.preventDefault();
        clearErrors(form);
        let parsedConfig: unknown;
        try {
          parsedConfig = JSON.parse(config.value);
        } catch (err) {
          const slot = form.querySelector<HTMLElement>('[data-field="config"] .field-error')!;
          replace(slot, `config is not valid JSON: ${(err as Error).message}`);
          slot.parentElement!.classList.add("invalid");
          return;
        }
        const scope: PolicyScope = {};
        const rt = resourceTypes.filter((b) => b.checked).map((b) => b.value as "token" | "timeslice");
        if (rt.length) scope.resourceTypes = rt;
        if (list(integrations.value).length) scope.integrations = list(integrations.value);
        if (list(requesters.value).length) scope.requesters = list(requesters.value);
        // The number input is sent as typed (a number when it parses), so the API judges it.
        const prio = priority.value.trim() === "" ? undefined : Number(priority.value);
        // Config is typed per policy type; the form sends what was typed and the API judges it.
        const body = {
          name: name.value,
          type: type.value as PolicyInput["type"],
          priority: prio,
          enabled: enabled.checked,
          scope,
          config: parsedConfig as Record<string, unknown>,
          description: description.value.trim() === "" ? undefined : description.value,
        } as PolicyInput;
        try {
          if (editing) {
            // PATCH replaces every field the form shows; `description: null` clears it (SPEC §7).
            const saved = await ctx.client.request<Policy>("PATCH", `/v1/policies/${encodeURIComponent(editing.id)}`, {
              ...body,
              description: body.description ?? null,
            });
            ctx.notify(`Saved ${saved.name} (version ${saved.version}).`);
          } else {
            const created = await ctx.client.createPolicy(body);
            ctx.notify(`Created ${created.name}.`);
          }
          reset();
          reload();
        } catch (err) {
          showErrors(form, err);
        }
      },
    },
    title,
    field("Name", name, { name: "name" }),
    h(
      "div",
      { class: "row" },
      field("Type", type, { name: "type" }),
      field("Priority", priority, { name: "priority" }),
    ),
    h("label", { class: "check" }, enabled, " Enabled"),
    field("Description (optional)", description, { name: "description" }),
    h(
      "fieldset",
      { class: "field", data: { field: "scope" } },
      h("legend", null, "Scope (empty = every request)"),
      h(
        "div",
        { class: "checks", data: { field: "scope.resourceTypes" } },
        resourceTypes.map((b) => h("label", { class: "check" }, b, ` ${b.value}`)),
      ),
      field("Integrations", integrations, { name: "scope.integrations" }),
      field("Requesters", requesters, { name: "scope.requesters" }),
      h("div", { class: "field-error", role: "alert" }),
    ),
    field("Config (JSON)", config, {
      name: "config",
      hint: types.map((t) => `${t.type}: ${t.summary}`).join(" · "),
    }),
    h("p", { class: "form-error", role: "alert" }),
    h("div", { class: "row" }, submit, cancel),
  );
  return { element: form, edit };
}
