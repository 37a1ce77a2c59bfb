/**
 * Bun's native PostgreSQL client, for the point reads on the request path only (rawSelect in
 * src/db/raw-query.ts). It pipelines concurrent statements on a few connections and parses rows
 * natively: ~6 µs of CPU per statement against ~30 µs through `pg` on the same machine, with fewer
 * socket writes. Everything else (Prisma, transactions, locks, LISTEN) stays on the `pg` pool.
 *
 * Both clients must reach the same server as the same user: the reader exists only when the URL
 * states host, user and database itself and has no parameters (sslmode, options, …) nor PG*
 * environment settings that `pg` would apply and Bun might read differently. If the server
 * refuses its first login (password only `pg` knows via ~/.pgpass, TLS required, auth method),
 * the reader turns itself off and those reads go through `pg`.
 */
import { SQL } from "bun";

const PG_ENV = ["PGSSLMODE", "PGSSLCERT", "PGSSLKEY", "PGSSLROOTCERT", "PGOPTIONS", "PGPASSWORD", "PGSERVICE"];
/** Connections at most: statements pipeline on each, so a few keep up with the whole pool's reads. */
const MAX_CONNECTIONS = 4;

export type NativeClientOptions = ConstructorParameters<typeof SQL>[0] & object;
type Options = NativeClientOptions;

export class NativeReader {
  readonly #options: Options;
  #sql: SQL;
  #state: "untried" | "proven" | "off" = "untried";
  #closed = false;

  private constructor(options: Options) {
    this.#options = options;
    this.#sql = new SQL(options);
  }

  /** A reader for `url`, or undefined when the URL or environment leaves room for the two clients to differ. */
  static forUrl(url: string, poolSize: number): NativeReader | undefined {
    const options = nativeClientOptions(url, Math.max(1, Math.min(MAX_CONNECTIONS, poolSize)));
    return options && new NativeReader({ ...options, idleTimeout: 60 });
  }

  /** The rows, or undefined when this reader is off (the caller then asks `pg`). */
  async select<R>(text: string, values: ReadonlyArray<string | number | null>): Promise<R[] | undefined> {
    if (this.#state === "off") return undefined;
    const sql = this.#sql;
    try {
      const rows = (await sql.unsafe(text, values as unknown[])) as R[];
      this.#state = "proven";
      return rows;
    } catch (err) {
      // Every read of a burst at start meets the refusal, not only the first to settle.
      if (this.#state !== "proven" && refusedLogin(err)) {
        if (this.#state === "untried") sql.close().catch(() => {});
        this.#state = "off";
        return undefined;
      }
      if (!stalePlan(err) || this.#closed) throw asPgError(err);
      // A migration (another process's) changed the type of a selected column: each connection's
      // prepared statement now fails for good. New connections prepare afresh; the old client
      // closes once its statements in flight are done (they retry here too).
      if (this.#sql === sql) {
        this.#sql = new SQL(this.#options);
        sql.close().catch(() => {});
      }
      try {
        return (await this.#sql.unsafe(text, values as unknown[])) as R[];
      } catch (again) {
        throw asPgError(again);
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#state = "off";
    await this.#sql.close();
  }
}

/**
 * Bun's client options reaching exactly the server, user and database `pg` reaches with `url`, or
 * undefined when the URL or the environment leaves room for the two clients to differ.
 */
export function nativeClientOptions(url: string, max: number): NativeClientOptions | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== "postgres:" && u.protocol !== "postgresql:") return undefined;
  if (u.search !== "" || u.hostname === "" || u.username === "") return undefined;
  // pg decodes an escaped host ("%2Fvar%2Frun%2Fpostgresql") to a Unix socket directory.
  if (u.hostname.includes("%")) return undefined;
  if (PG_ENV.some((k) => process.env[k] !== undefined)) return undefined;
  // What the URL leaves out, pg takes from PGPORT / PGDATABASE: the two would reach different servers.
  if (u.port === "" && process.env.PGPORT !== undefined) return undefined;
  if (u.pathname.length <= 1 && process.env.PGDATABASE !== undefined) return undefined;
  // A '%' escaping nothing (a password typed as is) pg takes literally: leave such URLs to pg.
  const [username, password, path] = [u.username, u.password, u.pathname.slice(1)].map(decoded);
  if (username === undefined || password === undefined || path === undefined) return undefined;
  return {
    hostname: u.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: u.port ? Number(u.port) : 5432,
    username,
    password,
    database: path || username,
    max,
    prepare: true,
    connectionTimeout: 5,
  };
}

function decoded(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

function stalePlan(err: unknown): boolean {
  const e = err as { errno?: unknown; routine?: unknown } | null;
  return e?.errno === "0A000" && e.routine === "RevalidateCachedQuery";
}

/** The server refused this client's login (not: is down, or the statement failed). */
export function refusedLogin(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  if (typeof e?.errno === "string" && e.errno.startsWith("28")) return true;
  return typeof e?.code === "string" && /AUTH|TLS|SSL|SASL|PASSWORD/.test(e.code);
}

/**
 * Bun's errors carry the SQLSTATE in `errno` and a client code (ERR_POSTGRES_…) in `code`; the
 * rest of the code (src/db/unavailable.ts, constraint checks) reads the SQLSTATE in `code`, as
 * `pg` puts it. Connection-level errors keep Bun's code, which unavailable.ts knows.
 */
export function asPgError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const e = err as Error & { code?: unknown; errno?: unknown };
  const code = typeof e.errno === "string" ? e.errno : e.code;
  return Object.assign(new Error(e.message, { cause: err }), { name: "DatabaseError", code });
}
