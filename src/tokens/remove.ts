/** Deleting token records: revoked at their providers first, then removed with their audit row. */
import type { Principal } from "../access/principal.ts";
import { NotFoundError, UpstreamError } from "../errors.ts";
import { tokenTarget } from "./record.ts";
import type { TokenKey } from "./repository.ts";
import type { Revocation, RevokeMode } from "./revoke.ts";
import type { VaultContext } from "./vault-deps.ts";

/**
 * Revokes at the provider (RFC 7009, where it has an endpoint), then deletes: the delete and its
 * TOKEN_DELETED row (with the revocation outcome) commit together. A provider failure does not
 * keep the record unless `revoke` is "required" (then 502, nothing deleted, a failed row).
 */
export async function deleteToken(
  v: VaultContext,
  principal: Principal,
  key: TokenKey,
  opts: { revoke?: Exclude<RevokeMode, "skip"> },
): Promise<{ revocation: Revocation | null }> {
  const row = await v.repo.fresh(key);
  if (!row) throw new NotFoundError("token");
  const target = tokenTarget(key.integration, key.userId);
  const revocation = v.revoker
    ? await v.revoker.revoke(row, principal.requesterId, opts.revoke ?? "best-effort")
    : null;
  if (opts.revoke === "required" && revocation?.outcome === "failed") {
    await v.audit.record({
      eventType: "TOKEN_DELETED",
      actor: principal.requesterId,
      target,
      success: false,
      details: { integration: key.integration, userId: key.userId, count: 0, kept: true, revocation },
    });
    throw new UpstreamError(
      "the provider did not confirm the revocation, so the record was kept (revoke=required); retry later",
      { revocation },
    );
  }
  await v.audit.apply({
    change: async (tx) => {
      const count = await v.repo.deleteByKey(tx, key);
      if (count === 0) throw new NotFoundError("token");
      return count;
    },
    event: (count) => ({
      eventType: "TOKEN_DELETED",
      actor: principal.requesterId,
      target,
      success: true,
      details: { integration: key.integration, userId: key.userId, count, revocation },
    }),
  });
  return { revocation };
}

/**
 * Removes every token of one user (account deletion); idempotent, audited even when nothing
 * matched. Each record is revoked at its provider first (concurrently), as `deleteToken` does; the
 * delete and its row commit together.
 */
export async function deleteAllForUser(
  v: VaultContext,
  principal: Principal,
  userId: string,
  opts: { revoke?: Exclude<RevokeMode, "skip"> },
): Promise<{ deleted: number; integrations: string[]; revocations: Array<Revocation & { integration: string }> }> {
  const { revoker } = v;
  const existing = revoker ? await v.repo.forUser(userId) : [];
  const revocations = await Promise.all(
    existing.map(async (row) => ({
      integration: row.integration,
      ...(await revoker!.revoke(row, principal.requesterId, opts.revoke ?? "best-effort")),
    })),
  );
  revocations.sort((x, y) => x.integration.localeCompare(y.integration));
  if (opts.revoke === "required" && revocations.some((r) => r.outcome === "failed")) {
    await v.audit.record({
      eventType: "TOKEN_DELETED",
      actor: principal.requesterId,
      target: `user:${userId}`,
      success: false,
      details: { userId, count: 0, kept: true, revocations },
    });
    throw new UpstreamError(
      "a provider did not confirm a revocation, so the records were kept (revoke=required); retry later",
      { revocations },
    );
  }
  const integrations = await v.audit.apply({
    change: (tx) => v.repo.deleteForUser(tx, userId),
    event: (integrations) => ({
      eventType: "TOKEN_DELETED",
      actor: principal.requesterId,
      target: `user:${userId}`,
      success: true,
      details: { userId, count: integrations.length, integrations, revocations },
    }),
  });
  return { deleted: integrations.length, integrations, revocations };
}
