/**
 * Wall-clock arithmetic for time-based policies, on `Intl` only (no tz database of our own).
 * An instant is turned into local weekday/hour/minute in an IANA zone, which is DST-correct by
 * construction because the platform's tz data does the offset lookup. The offset found for a UTC
 * hour is reused within it, falling back to a full lookup in hours that contain a transition.
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
      second: "numeric",
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
const UTC_DAY: readonly Weekday[] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/**
 * Local fields straight from `Intl` (the reference; ~2 µs). Throws RangeError for an unknown zone.
 */
export function zonedPartsExact(instantMs: number, timeZone: string): ZonedParts & { second: number } {
  let weekday: Weekday = "mon";
  let year = 0;
  let month = 0;
  let day = 0;
  let hour = 0;
  let minute = 0;
  let second = 0;
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
      case "second":
        second = Number(p.value);
        break;
    }
  }
  return { weekday, year, month, day, hour, minute, second, minutesOfDay: hour * 60 + minute };
}

/** UTC offset (local wall clock − UTC) in ms at one instant; offsets are whole seconds. */
function offsetAt(instantMs: number, timeZone: string): number {
  const p = zonedPartsExact(instantMs, timeZone);
  const wall = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0–99 to 1900–1999.
  wall.setUTCFullYear(p.year, p.month - 1, p.day);
  wall.setUTCHours(p.hour, p.minute, p.second, 0);
  return wall.getTime() - Math.floor(instantMs / 1000) * 1000;
}

const HOUR_MS = 3_600_000;

/**
 * Per zone, the UTC hour last asked about and its offset, or null when the offset changes
 * within that hour (a DST transition). Requests arrive in time order, so nearly every call
 * reuses the hour and costs a Date construction instead of a formatToParts call.
 */
const offsetWindows = new Map<string, { hour: number; offsetMs: number | null }>();

/** Local fields of `instantMs` in `timeZone`, DST-correct. Throws RangeError for an unknown zone. */
export function zonedParts(instantMs: number, timeZone: string): ZonedParts {
  const hour = Math.floor(instantMs / HOUR_MS);
  let w = offsetWindows.get(timeZone);
  if (w === undefined || w.hour !== hour) {
    // Transitions happen on whole seconds, so equal offsets at both ends of the hour mean none
    // happened inside it (tz data has no pair of transitions less than an hour apart).
    const first = offsetAt(hour * HOUR_MS, timeZone);
    const last = offsetAt(hour * HOUR_MS + HOUR_MS - 1, timeZone);
    w = { hour, offsetMs: first === last ? first : null };
    offsetWindows.set(timeZone, w);
  }
  if (w.offsetMs === null) return zonedPartsExact(instantMs, timeZone);
  const local = new Date(instantMs + w.offsetMs);
  const h = local.getUTCHours();
  const m = local.getUTCMinutes();
  return {
    weekday: UTC_DAY[local.getUTCDay()] ?? "mon",
    year: local.getUTCFullYear(),
    month: local.getUTCMonth() + 1,
    day: local.getUTCDate(),
    hour: h,
    minute: m,
    minutesOfDay: h * 60 + m,
  };
}

/** "2026-03-08 23:30" style local stamp, for reasons. */
export function formatLocal(parts: ZonedParts): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${parts.year}-${pad(parts.month)}-${pad(parts.day)} ${pad(parts.hour)}:${pad(parts.minute)}`;
}
