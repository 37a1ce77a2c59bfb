/**
 * What a policy type is: its config schema and its compile step, in one module per type under
 * `types/`, listed once in `registry.ts`. Everything else — the type list, the policy input
 * schema (and so OpenAPI), the engine's dispatch, the console's editor — derives from the registry.
 */
import type { z } from "zod";
import type { AccessContext, DenialCode, Outcome } from "./types.ts";

export interface CheckResult {
  outcome: Exclude<Outcome, "skipped">;
  reason: string;
  code?: DenialCode;
}

/** A compiled policy's request-time test; pure, and never throws for a well-formed context. */
export type Check = (ctx: AccessContext, now: number) => CheckResult;

export interface PolicyTypeModule<T extends string = string, S extends z.ZodType = z.ZodType> {
  readonly type: T;
  /** One line for people (console, OpenAPI). */
  readonly summary: string;
  /** A valid config the console's editor starts from. */
  readonly example: z.input<S>;
  /** Strict: unknown fields are refused, not dropped. */
  readonly config: S;
  /**
   * "whitelist" types admit requesters (at least one must, SPEC §5); "restriction" types may
   * only pass or deny.
   */
  readonly role: "whitelist" | "restriction";
  /**
   * Runs once per policy change, so everything not depending on the request is prepared here.
   * May throw (e.g. a time zone this runtime lacks): the policy then fails closed.
   */
  compile(config: z.output<S>, label: string): Check;
  /** Whether this policy lifts the default denial of data times after the request. */
  allowsFuture?(config: z.output<S>): boolean;
}

/** Keeps the literal type name and the schema's types, so the registry can derive unions from them. */
export function definePolicyType<const T extends string, S extends z.ZodType>(
  m: PolicyTypeModule<T, S>,
): PolicyTypeModule<T, S> {
  return m;
}

export function deny(code: DenialCode, reason: string): CheckResult {
  return { outcome: "denied", code, reason };
}
