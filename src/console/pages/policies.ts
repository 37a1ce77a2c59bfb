/**
 * Policies: the list in evaluation order, a create/edit form whose errors are the API's own
 * validation messages placed next to the fields they name, enable/disable, delete, and a
 * simulate form that shows the decision and every policy's verdict.
 */
import type { Policy, PolicyInput, PolicyScope, Simulation, SimulationInput } from "../../client/types.ts";
import type { Page, PageContext } from "../context.ts";
import { badge, datetimeLocal, fmtJson, h, isoFromLocal, replace, table, field } from "../dom.ts";
import { clearErrors, describeError, showErrors } from "../errors.ts";

type PolicyType = PolicyInput["type"];
const TYPES = ["whitelist", "time-based", "duration-limit", "purpose"] as const satisfies readonly PolicyType[];

/** A starting config per type (SPEC §5), so the admin edits a valid example rather than a blank. */
const TEMPLATES: Record<PolicyType, Record<string, unknown>> = {
  whitelist: { requesters: ["billing-service"], departments: [] },
  "time-based": { timezone: "UTC", days: ["mon", "tue", "wed", "thu", "fri"], hours: { from: "08:00", to: "18:00" } },
  "duration-limit": { maxSeconds: 86400 },
  purpose: { allowed: ["support"], minLength: 3 },
};
const template = (t: PolicyType) =>
  JSON.stringify(t === "whitelist" ? { requesters: ["billing-service"] } : TEMPLATES[t], null, 2);

const list = (s: string) =>
  s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);

export const policiesPage: Page = async (ctx) => {
  const { client, root } = ctx;
  const listSlot = h("div");
  let policies: Policy[] = [];
  const editor = policyEditor(ctx, () => void loadList().catch(fail));
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
  const cell = h("span");
  const start = h("button", { type: "button", class: "danger", onclick: () => replace(cell, confirm) }, "Delete…");
  const confirm = h(
    "span",
    { class: "confirm" },
    h(
      "button",
      {
        type: "button",
        class: "danger",
        onclick: async () => {
          try {
            await ctx.client.deletePolicy(p.id);
            ctx.notify(`Deleted ${p.name}.`);
            reload();
          } catch (err) {
            ctx.notify(describeError(err), "bad");
            replace(cell, start);
          }
        },
      },
      "Delete now",
    ),
    h("button", { type: "button", onclick: () => replace(cell, start) }, "Cancel"),
  );
  replace(cell, start);
  return cell;
}

function policyEditor(ctx: PageContext, reload: () => void) {
  let editing: Policy | null = null;
  const title = h("h2", null, "New policy");
  const name = h("input", { type: "text", autocomplete: "off", placeholder: "billing may read" });
  const type = h(
    "select",
    null,
    TYPES.map((t) => h("option", { value: t }, t)),
  );
  const priority = h("input", { type: "number", value: "0", step: "1" });
  const enabled = h("input", { type: "checkbox", checked: true });
  const description = h("input", { type: "text", autocomplete: "off" });
  const resourceTypes = (["token", "timeslice"] as const).map((t) => h("input", { type: "checkbox", value: t }));
  const integrations = h("input", { type: "text", autocomplete: "off", placeholder: "gmail, github (empty = any)" });
  const requesters = h("input", { type: "text", autocomplete: "off", placeholder: "requester ids (empty = any)" });
  const config = h("textarea", { rows: "7", spellcheck: "false", class: "mono" });
  config.value = template("whitelist");
  type.addEventListener("change", () => {
    if (!editing || editing.type !== type.value) config.value = template(type.value as PolicyType);
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Create policy");
  const cancel = h("button", { type: "button", hidden: true, onclick: () => reset() }, "Cancel edit");

  function reset() {
    editing = null;
    form.reset();
    clearErrors(form);
    config.value = template("whitelist");
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
          type: type.value as PolicyType,
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
      hint: "whitelist: requesters/departments · time-based: timezone, days, hours, notBefore, notAfter, maxDataAgeSeconds, allowFuture · duration-limit: maxSeconds · purpose: allowed, minLength",
    }),
    h("p", { class: "form-error", role: "alert" }),
    h("div", { class: "row" }, submit, cancel),
  );
  return { element: form, edit };
}

function simulateForm(ctx: PageContext, policies: () => Policy[]): HTMLElement {
  const now = new Date();
  const requesterId = h("input", { type: "text", autocomplete: "off", placeholder: "billing-service" });
  const department = h("input", { type: "text", autocomplete: "off", placeholder: "(stored department)" });
  const resourceType = h(
    "select",
    null,
    h("option", { value: "timeslice" }, "time slices"),
    h("option", { value: "token" }, "OAuth token"),
  );
  const integration = h("input", { type: "text", autocomplete: "off", placeholder: "gmail" });
  const userId = h("input", { type: "text", autocomplete: "off", placeholder: "user-42" });
  // Default: an hour of data that ended two hours ago. Grants open whole slices and never future
  // data, so a range ending "now" would simulate FUTURE_DATA (its last slice is still running).
  const start = h("input", { type: "datetime-local", value: datetimeLocal(new Date(now.getTime() - 3 * 3_600_000)) });
  const end = h("input", { type: "datetime-local", value: datetimeLocal(new Date(now.getTime() - 2 * 3_600_000)) });
  const purpose = h("input", { type: "text", autocomplete: "off" });
  const at = h("input", { type: "datetime-local" });
  const tokenFields = h(
    "div",
    { class: "row", hidden: true },
    field("Integration", integration, { name: "resource.integration" }),
    field("User id", userId, { name: "resource.userId" }),
  );
  resourceType.addEventListener("change", () => (tokenFields.hidden = resourceType.value !== "token"));
  const result = h("div", { class: "simulation-slot" });

  const form: HTMLFormElement = h(
    "form",
    {
      class: "stack",
      novalidate: true,
      data: { form: "simulate" },
      onsubmit: async (e: SubmitEvent) => {
        e.preventDefault();
        clearErrors(form);
        replace(result);
        const input: SimulationInput = {
          requesterId: requesterId.value.trim(),
          resource:
            resourceType.value === "token"
              ? { type: "token", integration: integration.value.trim(), userId: userId.value.trim() }
              : { type: "timeslice" },
          timeRange: { start: isoFromLocal(start.value) ?? "", end: isoFromLocal(end.value) ?? "" },
          purpose: purpose.value.trim() || undefined,
          department: department.value.trim() || undefined,
          at: isoFromLocal(at.value),
        };
        try {
          replace(result, simulationView(await ctx.client.simulate(input), policies()));
        } catch (err) {
          showErrors(form, err);
        }
      },
    },
    h(
      "div",
      { class: "row" },
      field("Requester id", requesterId, { name: "requesterId" }),
      field("Department (optional)", department, { name: "department" }),
    ),
    field("Resource", resourceType, { name: "resource" }),
    tokenFields,
    h(
      "div",
      { class: "row" },
      field("Data from", start, { name: "timeRange.start" }),
      field("Data to", end, { name: "timeRange.end" }),
    ),
    h(
      "div",
      { class: "row" },
      field("Purpose (optional)", purpose, { name: "purpose" }),
      field("As if at (optional)", at, { name: "at" }),
    ),
    h("p", { class: "form-error", role: "alert" }),
    h("button", { type: "submit", class: "primary" }, "Simulate"),
  );
  return h("div", null, form, result);
}

const OUTCOME_TONE: Record<string, "ok" | "bad" | "warn" | "muted" | "info"> = {
  admitted: "ok",
  passed: "ok",
  denied: "bad",
  "not-admitted": "warn",
  skipped: "muted",
};

function simulationView(s: Simulation, policies: Policy[]): HTMLElement {
  const nameOf = (id: string) => policies.find((p) => p.id === id)?.name ?? id;
  const rows = s.evaluated.map((e) =>
    h(
      "tr",
      { class: e.id === s.policyId ? "deciding" : undefined, data: { policyId: e.id } },
      h(
        "td",
        { class: "name" },
        nameOf(e.id),
        e.id === s.policyId ? h("span", { class: "muted small" }, " (deciding)") : null,
      ),
      h("td", { class: "num" }, `v${e.version}`),
      h("td", null, badge(e.outcome, OUTCOME_TONE[e.outcome] ?? "info")),
      h("td", null, e.reason),
      h("td", { class: "mono small" }, e.code ?? ""),
    ),
  );
  return h(
    "div",
    { class: ["simulation", s.granted ? "granted" : "denied"], data: { granted: String(s.granted) } },
    h(
      "p",
      { class: "verdict" },
      s.granted ? badge("GRANTED", "ok") : badge("DENIED", "bad"),
      " ",
      h("span", { class: "reason" }, s.reason),
      " ",
      h("span", { class: "mono small muted" }, s.reasonCode),
    ),
    h(
      "p",
      { class: "muted small" },
      `Requester ${s.requester.requesterId}`,
      s.requester.department ? ` (department ${s.requester.department})` : "",
      s.requester.exists ? "" : " — not a registered requester",
      s.slices
        ? ` · would cover slices ${s.slices.from}–${s.slices.to} of key v${s.slices.keyVersion} (${s.slices.keyCount} keys, ${s.slices.seedCount} seeds)`
        : "",
    ),
    table(["Policy", "Version", "Verdict", "Reason", "Code"], rows, "No policy applies: denied by default."),
  );
}
