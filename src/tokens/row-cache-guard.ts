/**
 * When the embedded owner's token row cache (src/tokens/row-cache.ts) may trust what it holds.
 * Reading a statement's text tells only which table it names, not what the database does with
 * it: a trigger, a rule or a function may write oauth_tokens from a statement naming another
 * table (or a SELECT), a foreign key may cascade into it. So two checks, both conservative:
 * - per statement: anything but one SELECT, or one INSERT/UPDATE/DELETE/WITH/MERGE not naming
 *   oauth_tokens, drops the cache; what is not one plain DML statement (DDL, several statements,
 *   a socket client's message) may also have changed the schema;
 * - per schema: rows are cached only while the database holds no object that could write
 *   oauth_tokens behind a statement's back (any function, trigger, rule or view of ours but the
 *   audit log's append-only guard, a foreign key on oauth_tokens, an inheritance link through
 *   which a statement on another table reaches its rows), checked again after every statement
 *   that may have changed the schema.
 */
import type { Database } from "../db/database.ts";
import { rawQuery } from "../db/raw-query.ts";

export type StatementEffect = "none" | "tokens" | "schema";

/** The lastUsed flush (src/tokens/repository.ts), which writes its times through to the cache itself. */
export const LAST_USED_SQL = `UPDATE oauth_tokens AS t SET "lastUsed" = u.ts
  FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, ts)
  WHERE t.id = u.id AND (t."lastUsed" IS NULL OR t."lastUsed" < u.ts)`;

const LEADING = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/y;
const VERB = /[a-z]+/iy;
const DML = /^(?:insert|update|delete|with|merge)$/i;
/** Unquoted names are case-folded (a quoted one contains the name as is); U&"…" may spell it in escapes. */
const NAMES_TOKENS = /oauth_tokens|u&["']/i;

/** `sql` null: a statement this process cannot see (an owner-socket client's message). */
export function statementEffect(sql: string | null): StatementEffect {
  if (sql === null) return "schema";
  if (sql === LAST_USED_SQL) return "none";
  LEADING.lastIndex = 0;
  LEADING.test(sql);
  const start = LEADING.lastIndex;
  let end = sql.length;
  while (end > start && (sql[end - 1] === ";" || /\s/.test(sql[end - 1]!))) end--;
  // A ';' inside a literal or a comment is taken for a second statement too: a drop, never a miss.
  const semicolon = sql.indexOf(";", start);
  if (semicolon !== -1 && semicolon < end) return "schema";
  VERB.lastIndex = start;
  const verb = VERB.exec(sql)?.[0] ?? "";
  if (verb.length === 6 && verb.toLowerCase() === "select") return "none";
  if (!DML.test(verb)) return "schema";
  return NAMES_TOKENS.test(sql) ? "tokens" : "none";
}

/** The only objects of ours the cache tolerates: the audit log's append-only guard (it only raises). */
const GUARD_FUNCTION = "audit_logs_refuse_change";
const GUARD_SOURCE = `
BEGIN
  RAISE EXCEPTION 'audit_logs is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
`;

const USER_SCHEMA = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`;
const WRITERS_SQL = `SELECT 'function' AS kind, p.proname AS name, p.prosrc AS src
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${USER_SCHEMA}
  UNION ALL SELECT 'trigger', t.tgfoid::regproc::text, NULL FROM pg_trigger t WHERE NOT t.tgisinternal
  UNION ALL SELECT 'rule', r.rulename, NULL
    FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${USER_SCHEMA}
  UNION ALL SELECT 'foreign key', conname, NULL FROM pg_constraint WHERE contype = 'f' AND conrelid = 'oauth_tokens'::regclass
  UNION ALL SELECT 'inheritance', inhparent::regclass::text, NULL FROM pg_inherits
    WHERE inhrelid = 'oauth_tokens'::regclass OR inhparent = 'oauth_tokens'::regclass`;

interface SchemaObject {
  kind: string;
  name: string;
  src: string | null;
}

function tolerated(o: SchemaObject): boolean {
  if (o.kind === "function") return o.name === GUARD_FUNCTION && o.src === GUARD_SOURCE;
  return o.kind === "trigger" && o.name === GUARD_FUNCTION;
}

export class SchemaGuard {
  readonly #db: Database;
  #epoch = 0;
  #checked = -1;
  #safe = false;

  constructor(db: Database) {
    this.#db = db;
  }

  /** A statement may have added or removed a function, trigger, rule, view or foreign key. */
  schemaMayHaveChanged(): void {
    this.#epoch++;
  }

  /** Whether rows may be cached now (checks the catalog once per possible schema change). */
  async cacheable(): Promise<boolean> {
    if (this.#checked === this.#epoch) return this.#safe;
    const epoch = this.#epoch;
    let safe: boolean;
    try {
      safe = (await rawQuery<SchemaObject>(this.#db, "chronokms_token_cache_guard", WRITERS_SQL, [])).every(tolerated);
    } catch {
      return false;
    }
    if (epoch !== this.#epoch) return false;
    this.#checked = epoch;
    this.#safe = safe;
    return safe;
  }
}
