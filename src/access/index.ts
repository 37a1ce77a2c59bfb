/**
 * Builds the access-control services (API keys, requesters, policies, decisions, grants) over one
 * database, audit sink and key service. The runtime calls this once per process.
 */
import type { Database } from "../db/database.ts";
import type { AuditSink } from "../audit/types.ts";
import type { KeyService } from "../keys/types.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../log.ts";
import type { Config } from "../config.ts";
import { PolicyStore } from "./policy-store.ts";
import { ApiKeyService } from "./api-keys.ts";
import { AuthFailureLimiter } from "./rate-limit.ts";
import { RequesterService } from "./requesters.ts";
import { PolicyAccessDecider } from "./decider.ts";
import { AccessRequestService } from "./access-requests.ts";
import { ensureBootstrapAdmin } from "./bootstrap.ts";
import { SimulationService } from "./simulate.ts";

export interface AccessServices {
  apiKeys: ApiKeyService;
  limiter: AuthFailureLimiter;
  requesters: RequesterService;
  policies: PolicyStore;
  decider: PolicyAccessDecider;
  accessRequests: AccessRequestService;
  simulator: SimulationService;
  /** The audit sink these services write through (the auth middleware uses it too). */
  audit: AuditSink;
  close(): Promise<void>;
}

export interface AccessDeps {
  config: Pick<Config, "authFailuresPerMinute" | "bootstrapAdminKey">;
  db: Database;
  audit: AuditSink;
  keys: KeyService;
  clock: Clock;
  log: Logger;
  /** Overrides for tests. */
  apiKeyCacheTtlMs?: number;
  policyPollMs?: number;
}

export async function createAccessServices(d: AccessDeps): Promise<AccessServices> {
  const log = d.log.child({ component: "access" });
  const apiKeys = new ApiKeyService({
    db: d.db,
    audit: d.audit,
    clock: d.clock,
    log,
    ...(d.apiKeyCacheTtlMs !== undefined ? { cacheTtlMs: d.apiKeyCacheTtlMs } : {}),
  });
  const policies = new PolicyStore({
    db: d.db,
    audit: d.audit,
    log,
    ...(d.policyPollMs !== undefined ? { pollMs: d.policyPollMs } : {}),
  });
  try {
    apiKeys.start();
    await policies.start();
    if (d.config.bootstrapAdminKey)
      await ensureBootstrapAdmin({ db: d.db, audit: d.audit, log, key: d.config.bootstrapAdminKey });
  } catch (err) {
    await policies.close();
    await apiKeys.close();
    throw err;
  }
  const decider = new PolicyAccessDecider({ policies, audit: d.audit, clock: d.clock });
  const requesters = new RequesterService({ db: d.db, audit: d.audit, log, apiKeys });
  return {
    apiKeys,
    limiter: new AuthFailureLimiter(d.config.authFailuresPerMinute, d.clock),
    requesters,
    policies,
    decider,
    accessRequests: new AccessRequestService({ db: d.db, keys: d.keys, decider, clock: d.clock }),
    simulator: new SimulationService({ decider, requesters, keys: d.keys, audit: d.audit }),
    audit: d.audit,
    async close() {
      await policies.close();
      await apiKeys.close();
    },
  };
}
