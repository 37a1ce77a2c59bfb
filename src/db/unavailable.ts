/**
 * Recognises "the database is unavailable right now" among the errors Prisma, its pg driver
 * adapter, pg itself and Bun's native client throw (connection lost or refused, server shutting
 * down, pool exhausted, statement or lock timeout), so the HTTP layer answers 503 instead of a
 * generic 500.
 */

/** SQLSTATEs meaning "try again later", not "your query is wrong". */
const TRANSIENT_SQLSTATE = /^(08...|53...|57P0[1-3]|57014|55P03|40001|40P01)$/;
/** Prisma: can't reach / timed out / server closed the connection / pool timeout / transaction API (expired, closed). */
const TRANSIENT_PRISMA = new Set(["P1001", "P1002", "P1008", "P1017", "P2024", "P2028"]);
const TRANSIENT_NODE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);
/** Bun's native client (src/db/native-reader.ts): connection lost, refused or timed out. */
const TRANSIENT_BUN = /^ERR_POSTGRES_(CONNECTION_|IDLE_TIMEOUT|LIFETIME_TIMEOUT)/;
const TRANSIENT_MESSAGE =
  /Client has encountered a connection error|Connection terminated|timeout exceeded when trying to connect|Client was closed and is not queryable|terminating connection due to administrator command/;

/** Every error code carried by the error, its Prisma driver-adapter metadata and its causes. */
function codesOf(err: unknown, depth = 0): string[] {
  if (!err || typeof err !== "object" || depth > 5) return [];
  const e = err as {
    code?: unknown;
    meta?: { driverAdapterError?: { cause?: { originalCode?: unknown; code?: unknown } } };
    cause?: unknown;
  };
  const out: string[] = [];
  if (typeof e.code === "string") out.push(e.code);
  const adapter = e.meta?.driverAdapterError?.cause;
  if (typeof adapter?.originalCode === "string") out.push(adapter.originalCode);
  if (typeof adapter?.code === "string") out.push(adapter.code);
  return [...out, ...codesOf(e.cause, depth + 1)];
}

/**
 * PostgreSQL ended the transaction itself to break a deadlock (40P01) or a serialization conflict
 * (40001): a statement failed, so nothing of the transaction committed, and running it again is
 * the remedy (a failed COMMIT, where that is unknown, reports a connection error instead).
 */
export function isTransactionConflict(err: unknown): boolean {
  if (!err || typeof err !== "object") return false;
  return codesOf(err).some((code) => code === "40P01" || code === "40001");
}

export function isDatabaseUnavailable(err: unknown): boolean {
  if (!err || typeof err !== "object") return false;
  for (const code of codesOf(err)) {
    if (
      TRANSIENT_SQLSTATE.test(code) ||
      TRANSIENT_PRISMA.has(code) ||
      TRANSIENT_NODE.has(code) ||
      TRANSIENT_BUN.test(code)
    )
      return true;
  }
  let e: unknown = err;
  for (let i = 0; i < 5 && e instanceof Error; i++, e = e.cause) if (TRANSIENT_MESSAGE.test(e.message)) return true;
  return false;
}
