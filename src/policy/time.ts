/**
 * Wall-clock arithmetic for time-based policies, on `Intl` only (no tz database of our own).
 * An instant is turned into local weekday/hour/minute in an IANA zone, which is DST-correct by
 * construction because the platform's tz data does the offset lookup.
 */

export const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;
export type Weekday = (typeof WEEKDAYS)[number];

const WEEKDAY_NAMES: Record<Weekday, string> = {
  mon: "Monday",
  tue: "Tuesday",
  wed: "Wednesday",
  thu: "Thursday",
  fri: "Friday",
  sat: "Saturday",
  sun: "Sunday",
};

export function weekdayName(day: Weekday): string {
  return WEEKDAY_NAMES[day];
}

/** Local calendar and clock fields of one instant in one zone. */
export interface ZonedParts {
  weekday: Weekday;
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  /** hour * 60 + minute, the unit `isWithinHours` works in. */
  minutesOfDay: number;
}

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** "HH:MM" (00:00–23:59) → minutes since local midnight, or null when malformed. */
export function parseHHMM(value: string): number | null {
  const m = HHMM.exec(value);
  if (m === null) return null;
  return Number(m[1]) * 60 + Number(m[2]);
}

export function formatHHMM(minutesOfDay: number): string {
  const h = Math.floor(minutesOfDay / 60);
  const m = minutesOfDay % 60;
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`;
}

/**
 * Is a local time inside the window [from, to)? `from` is inclusive and `to` exclusive, so
 * 09:00–17:00 admits 16:59 but not 17:00, and back-to-back windows never overlap. When
 * from > to the window wraps midnight (22:00–06:00 admits 23:30 and 05:59, not 06:00).
 * from == to is an empty window (the schema rejects it; omit `hours` for all day).
 */
export function isWithinHours(minutesOfDay: number, from: number, to: number): boolean {
  if (from < to) return minutesOfDay >= from && minutesOfDay < to;
  if (from > to) return minutesOfDay >= from || minutesOfDay < to;
  return false;
}

// Constructing a DateTimeFormat costs ~25 µs, formatting ~2 µs: build each zone's formatter once
// per process. The set of zones in use is tiny (bounded by configured policies).
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      weekday: "short",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/**
 * The zone's canonical spelling when `timeZone` is a zone name the platform knows, else null.
 * Offset strings ("+05:00") are refused: they are not IANA names and have no DST rules.
 */
export function canonicalTimeZone(timeZone: string): string | null {
  if (timeZone.length === 0 || timeZone.length > 64 || /^[+\-\d]/.test(timeZone)) return null;
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

const SHORT_WEEKDAY: Record<string, Weekday> = {
  Mon: "mon",
  Tue: "tue",
  Wed: "wed",
  Thu: "thu",
  Fri: "fri",
  Sat: "sat",
  Sun: "sun",
};

// Many requests land in the same second; remembering the last answer per zone skips the
// formatToParts call for them. Keyed by whole second, which is exact for every real offset.
const lastParts = new Map<string, { second: number; parts: ZonedParts }>();

/** Local fields of `instantMs` in `timeZone`. Throws RangeError for an unknown zone. */
export function zonedParts(instantMs: number, timeZone: string): ZonedParts {
  const second = Math.floor(instantMs / 1000);
  const cached = lastParts.get(timeZone);
  if (cached !== undefined && cached.second === second) return cached.parts;

  let weekday: Weekday = "mon";
  let year = 0;
  let month = 0;
  let day = 0;
  let hour = 0;
  let minute = 0;
  for (const p of formatterFor(timeZone).formatToParts(instantMs)) {
    switch (p.type) {
      case "weekday":
        weekday = SHORT_WEEKDAY[p.value] ?? weekday;
        break;
      case "year":
        year = Number(p.value);
        break;
      case "month":
        month = Number(p.value);
        break;
      case "day":
        day = Number(p.value);
        break;
      case "hour":
        // Some ICU builds print midnight as "24" even with h23.
        hour = Number(p.value) % 24;
        break;
      case "minute":
        minute = Number(p.value);
        break;
    }
  }
  const parts: ZonedParts = { weekday, year, month, day, hour, minute, minutesOfDay: hour * 60 + minute };
  lastParts.set(timeZone, { second, parts });
  return parts;
}

/** "2026-03-08 23:30" style local stamp, for reasons. */
export function formatLocal(parts: ZonedParts): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${parts.year}-${pad(parts.month)}-${pad(parts.day)} ${pad(parts.hour)}:${pad(parts.minute)}`;
}
