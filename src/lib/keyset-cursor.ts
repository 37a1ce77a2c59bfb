/**
 * The one paging style of every list: `limit` and an opaque `cursor` in, `{ items, nextCursor }`
 * out (nextCursor null on the last page). A cursor is the keyset position after which the next
 * page starts: (time, id) for lists newest first, or the id alone for lists in uuid v7 order.
 * Anything we did not issue is one ValidationError (400), never a 500.
 */
import { fromBase64url, toBase64url, utf8, utf8Decode } from "../crypto/bytes.ts";
import { ValidationError } from "../errors.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** One page of a list. */
export interface Page<T> {
  items: T[];
  /** Pass back unchanged as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

const invalid = () => new ValidationError("invalid cursor: pass back the nextCursor of a previous page unchanged");

function decodeJson(cursor: string): unknown {
  try {
    return JSON.parse(utf8Decode(fromBase64url(cursor)));
  } catch {
    throw invalid();
  }
}

export function encodeCursor(timeMs: number, id: string): string {
  return toBase64url(utf8(JSON.stringify([timeMs, id])));
}

export function decodeCursor(cursor: string): { timeMs: number; id: string } {
  const v = decodeJson(cursor);
  if (
    Array.isArray(v) &&
    v.length === 2 &&
    Number.isSafeInteger(v[0]) &&
    (v[0] as number) >= 0 &&
    typeof v[1] === "string" &&
    UUID.test(v[1])
  ) {
    return { timeMs: v[0] as number, id: v[1] };
  }
  throw invalid();
}

/** The cursor of a list ordered by its uuid v7 id alone. */
export function encodeIdCursor(id: string): string {
  return toBase64url(utf8(JSON.stringify([id])));
}

/** The id after which the next page starts; a bare uuid (what these lists returned before) is still accepted. */
export function decodeIdCursor(cursor: string): string {
  if (UUID.test(cursor)) return cursor;
  const v = decodeJson(cursor);
  if (Array.isArray(v) && v.length === 1 && typeof v[0] === "string" && UUID.test(v[0])) return v[0];
  throw invalid();
}

/**
 * Rows after (time, id) in (time desc, id desc) order, as a Prisma `where` member; `time` is the
 * column's own type (Date or bigint).
 */
export function olderThan<K extends string, V>(
  column: K,
  time: V,
  id: string,
): { OR: [{ [P in K]: { lt: V } }, { [P in K]: V } & { id: { lt: string } }] } {
  return {
    OR: [
      { [column]: { lt: time } } as { [P in K]: { lt: V } },
      { [column]: time, id: { lt: id } } as { [P in K]: V } & { id: { lt: string } },
    ],
  };
}

/** The page of `rows` fetched with `take: limit + 1` (one more than the page, to know whether another follows). */
export function pageOf<R, T>(rows: R[], limit: number, view: (r: R) => T, cursorOf: (last: R) => string): Page<T> {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { items: page.map(view), nextCursor: rows.length > limit && last !== undefined ? cursorOf(last) : null };
}
