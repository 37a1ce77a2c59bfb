/** What the token vault's operations (read, write, remove, list) work with. */
import type { PolicyAccessDecider } from "../access/decider.ts";
import type { AuditSink } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import type { Database } from "../db/database.ts";
import type { KeyService } from "../keys/types.ts";
import type { Logger } from "../log.ts";
import type { LastUsedTracker } from "./last-used.ts";
import type { TokenRefresher } from "./refresh.ts";
import type { TokenRepository } from "./repository.ts";
import type { TokenRevoker } from "./revoke.ts";

export interface TokenVaultDeps {
  db: Database;
  keys: KeyService;
  audit: AuditSink;
  decider: Pick<PolicyAccessDecider, "decide" | "evaluate">;
  refresher: TokenRefresher;
  /** Revocation at the provider on delete; without it deletes only remove the record. */
  revoker?: TokenRevoker;
  clock: Clock;
  log: Logger;
  /** How often coalesced lastUsed times are written (default 5 s). */
  lastUsedFlushMs?: number;
}

export interface VaultContext extends TokenVaultDeps {
  repo: TokenRepository;
  lastUsed: LastUsedTracker;
}
