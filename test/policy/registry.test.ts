/**
 * The policy type registry: every derived list agrees with it, each type's own example is a
 * valid policy, and the example type added through it (`purpose-denylist`) validates and decides
 * like any other.
 */
import { describe, expect, test } from "bun:test";
import {
  POLICY_TYPES,
  POLICY_TYPE_MODULES,
  PolicyInputSchema,
  PolicyTypeSchema,
  evaluate,
  parsePolicyInput,
  policyTypeCatalog,
} from "../../src/policy/index.ts";
import { NOW, aliceWhitelist, ctx, policy } from "./helpers.ts";

describe("registry", () => {
  test("the type list, the type enum and the catalog all come from the modules", () => {
    const names = POLICY_TYPE_MODULES.map((m) => m.type);
    expect([...POLICY_TYPES]).toEqual(names);
    expect(PolicyTypeSchema.options).toEqual(names);
    expect(policyTypeCatalog().map((t) => t.type)).toEqual(names);
    expect(new Set(names).size).toBe(names.length);
  });

  test("every type's example config is a valid policy of that type, and an unknown type is refused by name", () => {
    for (const m of POLICY_TYPE_MODULES) {
      const parsed = parsePolicyInput({ name: `example ${m.type}`, type: m.type, config: m.example });
      expect(parsed.type).toBe(m.type);
    }
    const unknown = PolicyInputSchema.safeParse({ name: "x", type: "ip-allowlist", config: {} });
    expect(unknown.success).toBe(false);
    expect(unknown.error?.issues[0]?.message).toContain('"purpose-denylist"');
  });
});

describe("purpose-denylist (the example type)", () => {
  const denylist = (denied: string[]) => ({
    name: "no marketing",
    type: "purpose-denylist" as const,
    config: { denied },
  });

  test("config: a non-empty list of purposes, strict", () => {
    expect(parsePolicyInput(denylist([" marketing "])).config).toEqual({ denied: ["marketing"] });
    for (const bad of [[], "marketing", [""], undefined]) {
      const input = { name: "no marketing", type: "purpose-denylist", config: { denied: bad } };
      expect(PolicyInputSchema.safeParse(input).success).toBe(false);
    }
    const extra = { ...denylist(["x"]), config: { denied: ["x"], allowed: ["y"] } };
    expect(PolicyInputSchema.safeParse(extra).success).toBe(false);
  });

  test("denies a listed purpose (trimmed, any case) with PURPOSE_NOT_ALLOWED; other or no purpose passes", () => {
    const policies = [policy(aliceWhitelist), policy({ id: "deny-mkt", ...denylist(["Marketing"]) })];
    const denied = evaluate(policies, ctx({ purpose: "  marketing " }), NOW);
    expect(denied).toMatchObject({ allowed: false, code: "PURPOSE_NOT_ALLOWED", policyId: "deny-mkt" });
    expect(denied.reason).toContain('"marketing"');
    expect(evaluate(policies, ctx({ purpose: "support ticket 7" }), NOW).allowed).toBe(true);
    expect(evaluate(policies, ctx({ purpose: null }), NOW).allowed).toBe(true);
    // Restrictions never admit: without a whitelist the request is still denied by default.
    expect(evaluate([policies[1]!], ctx({ purpose: "support" }), NOW)).toMatchObject({ code: "NO_POLICY" });
  });

  test("a hand-edited stored config fails closed", () => {
    const broken = { ...policy({ id: "deny-mkt", ...denylist(["x"]) }), config: { denied: "marketing" } } as never;
    const d = evaluate([policy(aliceWhitelist), broken], ctx({ purpose: "support" }), NOW);
    expect(d).toMatchObject({ allowed: false, code: "POLICY_MISCONFIGURED", policyId: "deny-mkt" });
  });
});
