import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { canonicalTimeZone, formatHHMM, isWithinHours, parseHHMM, zonedParts } from "../../src/policy/index.ts";
import { zonedPartsExact } from "../../src/policy/time.ts";

describe("parseHHMM", () => {
  test.each([
    ["00:00", 0],
    ["09:30", 570],
    ["23:59", 1439],
    ["24:00", null],
    ["25:00", null],
    ["12:60", null],
    ["9:00", null],
    ["09:00:00", null],
    ["", null],
  ] as const)("%p → %p", (input, expected) => {
    expect(parseHHMM(input)).toBe(expected);
  });

  test("formatHHMM inverts parseHHMM", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 1439 }), (m) => parseHHMM(formatHHMM(m)) === m));
  });
});

describe("isWithinHours: from inclusive, to exclusive", () => {
  const h = (s: string) => parseHHMM(s)!;
  test.each([
    // [local time, from, to, within]
    ["09:00", "09:00", "17:00", true],
    ["16:59", "09:00", "17:00", true],
    ["17:00", "09:00", "17:00", false],
    ["08:59", "09:00", "17:00", false],
    ["23:30", "22:00", "06:00", true],
    ["22:00", "22:00", "06:00", true],
    ["21:59", "22:00", "06:00", false],
    ["00:00", "22:00", "06:00", true],
    ["05:59", "22:00", "06:00", true],
    ["06:00", "22:00", "06:00", false],
    ["12:00", "22:00", "06:00", false],
    ["23:59", "00:00", "23:59", false],
    ["12:00", "12:00", "12:00", false],
  ] as const)("%s in %s–%s → %p", (t, from, to, within) => {
    expect(isWithinHours(h(t), h(from), h(to))).toBe(within);
  });

  test("a wrapping window is the complement of the straight window it leaves out", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1439 }),
        fc.integer({ min: 0, max: 1439 }),
        fc.integer({ min: 0, max: 1439 }),
        (m, a, b) => {
          fc.pre(a !== b);
          const [from, to] = a > b ? [a, b] : [b, a];
          return isWithinHours(m, from, to) === !isWithinHours(m, to, from);
        },
      ),
    );
  });
});

describe("zonedParts", () => {
  test.each([
    // UTC instant, zone, expected local weekday and HH:MM
    ["2026-03-08T04:30:00Z", "America/New_York", "sat", "23:30"], // EST, the night before the change
    ["2026-03-08T06:59:00Z", "America/New_York", "sun", "01:59"], // last EST minute
    ["2026-03-08T07:00:00Z", "America/New_York", "sun", "03:00"], // 02:00 EST jumps to 03:00 EDT
    ["2026-03-09T03:30:00Z", "America/New_York", "sun", "23:30"], // EDT
    ["2026-11-01T05:30:00Z", "America/New_York", "sun", "01:30"], // first 01:30 (EDT)
    ["2026-11-01T06:30:00Z", "America/New_York", "sun", "01:30"], // second 01:30 (EST)
    ["2026-11-02T04:30:00Z", "America/New_York", "sun", "23:30"], // EST
    ["2026-03-08T23:00:00Z", "Asia/Tokyo", "mon", "08:00"],
    ["2026-03-14T03:00:00Z", "America/Los_Angeles", "fri", "20:00"],
    ["2026-03-10T12:00:00Z", "Asia/Kathmandu", "tue", "17:45"], // +05:45
  ] as const)("%s in %s is %s %s", (iso, tz, weekday, hhmm) => {
    const p = zonedParts(Date.parse(iso), tz);
    expect(p.weekday).toBe(weekday);
    expect(formatHHMM(p.minutesOfDay)).toBe(hhmm);
  });

  // zonedParts reuses one UTC offset per hour; zonedPartsExact asks Intl every time.
  const strip = ({ second: _s, ...p }: ReturnType<typeof zonedPartsExact>) => p;

  test("the per-hour offset shortcut agrees with Intl in every zone the runtime knows", () => {
    const zones = Intl.supportedValuesOf("timeZone");
    fc.assert(
      fc.property(fc.constantFrom(...zones), fc.integer({ min: 0, max: Date.UTC(2100, 0, 1) }), (tz, ms) => {
        expect(zonedParts(ms, tz)).toEqual(strip(zonedPartsExact(ms, tz)));
      }),
      { numRuns: 5000 },
    );
  });

  test.each(["America/New_York", "Europe/London", "Australia/Lord_Howe", "America/Santiago"])(
    "about every 10 minutes of 2026 in %s agrees with Intl (DST transitions included)",
    (tz) => {
      for (let ms = Date.UTC(2026, 0, 1); ms < Date.UTC(2027, 0, 1); ms += 10 * 60_000 + 7_001) {
        const fast = zonedParts(ms, tz);
        const exact = zonedPartsExact(ms, tz);
        if (fast.minutesOfDay !== exact.minutesOfDay || fast.weekday !== exact.weekday || fast.day !== exact.day) {
          expect(fast).toEqual(strip(exact));
        }
      }
    },
  );

  test("UTC parts agree with Date's UTC getters", () => {
    const days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Date.UTC(9999, 11, 31) }), (ms) => {
        const p = zonedParts(ms, "UTC");
        const d = new Date(ms);
        return (
          p.weekday === days[d.getUTCDay()] &&
          p.year === d.getUTCFullYear() &&
          p.month === d.getUTCMonth() + 1 &&
          p.day === d.getUTCDate() &&
          p.minutesOfDay === d.getUTCHours() * 60 + d.getUTCMinutes()
        );
      }),
    );
  });
});

describe("canonicalTimeZone", () => {
  test.each([
    ["America/New_York", "America/New_York"],
    ["america/new_york", "America/New_York"],
    ["UTC", "UTC"],
    ["Mars/Base", null],
    ["+05:00", null],
    ["", null],
  ] as const)("%p → %p", (tz, expected) => {
    expect(canonicalTimeZone(tz)).toBe(expected);
  });
});
