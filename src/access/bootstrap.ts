/**
 * `BOOTSTRAP_ADMIN_KEY`: when set and no admin key exists yet, creates the requester
 * `bootstrap-admin` holding exactly that key, so automation needs no scraping of output.
 * Idempotent, and safe for two processes starting together (transaction-scoped advisory lock).
 */
import type { Database } from "../db/database.ts";
import type { AuditSink } from "../audit/types.ts";
import type { Logger } from "../log.ts";
import { ConfigError } from "../errors.ts";
import { API_KEY_HOWTO, hashSecret, parseApiKey } from "./api-key-format.ts";
import { ApiKeyRepository } from "./api-key-repository.ts";
import { ensureRequesterRow } from "./requesters.ts";

export const BOOTSTRAP_REQUESTER_ID = "bootstrap-admin";
// Arbitrary constant identifying this lock among the service's advisory locks.
const BOOTSTRAP_LOCK = 0x636b6d73_01;

/** An admin key exists already: nothing to create, nothing to audit. */
class AdminExists extends Error {}

/** Throws ConfigError (the process refuses to start) for a malformed key. */
export function checkBootstrapKey(value: string): { keyId: string; secretHash: string } {
  const parsed = parseApiKey(value.trim());
  if (!parsed)
    throw new ConfigError(
      `BOOTSTRAP_ADMIN_KEY: not a chronokms API key (expected ckms_<16 base32 chars>_<43 base64url chars>); ${API_KEY_HOWTO}`,
    );
  const secretHash = hashSecret(parsed.keyId, parsed.secret);
  parsed.secret.fill(0);
  return { keyId: parsed.keyId, secretHash };
}

/** Returns "created" or why nothing was done. Audits the creation (actor `system:bootstrap`). */
export async function ensureBootstrapAdmin(opts: {
  db: Database;
  audit: AuditSink;
  log: Logger;
  key: string;
}): Promise<"created" | "admin-exists"> {
  const { keyId, secretHash } = checkBootstrapKey(opts.key);
  // Cheap check first (every start with BOOTSTRAP_ADMIN_KEY set), then again under the lock.
  const keys = new ApiKeyRepository(opts.db);
  if ((await keys.countAdmins()) > 0) {
    opts.log.debug("bootstrap admin key not created: an admin key exists");
    return "admin-exists";
  }
  // The key and its audit row commit together (one transaction of the audit writer).
  const created = await opts.audit
    .apply({
      change: async (tx) => {
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(${BOOTSTRAP_LOCK}::bigint)`;
        if ((await keys.countAdmins(tx)) > 0) throw new AdminExists();
        const requester = await ensureRequesterRow(tx, BOOTSTRAP_REQUESTER_ID, "Bootstrap administrator");
        await keys.insert(tx, {
          keyId,
          secretHash,
          requesterId: requester.id,
          name: "BOOTSTRAP_ADMIN_KEY",
          roles: ["admin"],
          expiresAt: null,
        });
        return requester;
      },
      event: () => ({
        eventType: "API_KEY_CREATED",
        actor: "system:bootstrap",
        target: `api-key:${keyId}`,
        success: true,
        details: { requesterId: BOOTSTRAP_REQUESTER_ID, roles: ["admin"], source: "BOOTSTRAP_ADMIN_KEY" },
      }),
    })
    .catch((err: unknown) => {
      if (err instanceof AdminExists) return null;
      throw err;
    });
  if (!created) {
    opts.log.debug("bootstrap admin key not created: an admin key exists");
    return "admin-exists";
  }
  opts.log.info("bootstrap admin key installed", { requesterId: BOOTSTRAP_REQUESTER_ID, keyId });
  return "created";
}
