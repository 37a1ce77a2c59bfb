/**
 * The policies page's simulate form: what a request would get and why, with every policy's
 * verdict (nothing is granted; the server audits it as ACCESS_SIMULATED).
 */
import type { Policy, Simulation, SimulationInput } from "../../client/types.ts";
import type { PageContext } from "../context.ts";
import { badge, datetimeLocal, field, h, isoFromLocal, replace, table } from "../dom.ts";
import { clearErrors, showErrors } from "../errors.ts";

export function simulateForm(ctx: PageContext, policies: () => Policy[]): HTMLElement {
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
