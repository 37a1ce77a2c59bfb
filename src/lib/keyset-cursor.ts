/**
 * Opaque cursors for keyset pagination ordered by (time, id): the position after which the next
 * page starts. Anything we did not issue is one ValidationError (400), never a 500.
 */
import { fromBase64url, toBase64url, utf8, utf8Decode } from "../crypto/bytes.ts";
import { ValidationError } from "../errors.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function encodeCursor(timeMs: number, id: string): string {
  return toBase64url(utf8(JSON.stringify([timeMs, id])));
}

export function decodeCursor(cursor: string): { timeMs: number; id: string } {
  try {
    const v: unknown = JSON.parse(utf8Decode(fromBase64url(cursor)));
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
  } catch {
    // fall through to the one error below
  }
  throw new ValidationError("invalid cursor: pass back the nextCursor of a previous page unchanged");
}
