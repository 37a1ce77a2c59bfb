/** The one instant parser (lib/schemas.ts): the same rules for JSON bodies and query strings. */
import { expect, test } from "bun:test";
import { InstantSchema, MAX_INSTANT_MS, QueryInstantSchema } from "../../src/lib/schemas.ts";

test("bodies and queries accept the same instants and normalise them to epoch ms", () => {
  const at = Date.UTC(2026, 2, 8, 9, 0);
  for (const v of ["2026-03-08T09:00:00Z", "2026-03-08T10:00:00+01:00", "2026-03-08T09:00:00.000Z"]) {
    expect(InstantSchema.parse(v)).toBe(at);
    expect(QueryInstantSchema.parse(v)).toBe(at);
  }
  expect(InstantSchema.parse(at)).toBe(at);
  expect(QueryInstantSchema.parse(String(at))).toBe(at);
  expect(QueryInstantSchema.parse("0")).toBe(0);
  expect(QueryInstantSchema.parse(String(MAX_INSTANT_MS))).toBe(MAX_INSTANT_MS);
});

test("and refuse the same things: local times, other formats, out-of-range or fractional values", () => {
  for (const v of ["2026-03-08T09:00:00", "2026-03-08", "yesterday", "", "-1", "1.5", String(MAX_INSTANT_MS + 1)]) {
    expect(QueryInstantSchema.safeParse(v).success).toBe(false);
  }
  for (const v of ["2026-03-08T09:00:00", -1, 1.5, MAX_INSTANT_MS + 1, Number.NaN, null]) {
    expect(InstantSchema.safeParse(v).success).toBe(false);
  }
  expect(QueryInstantSchema.safeParse("2026-03-08T09:00:00").error?.issues[0]?.message).toContain("±HH:MM offset");
  // Digits are always epoch ms, however many: too large says so rather than "not ISO-8601".
  expect(QueryInstantSchema.safeParse("9".repeat(20)).error?.issues[0]?.message).toContain("9999-12-31");
});
