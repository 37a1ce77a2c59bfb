/**
 * Builds everything a process needs from its config: the database (migrated unless turned off)
 * and the services above it. Used by the server, the scripts and the tests, so they all run the
 * same wiring.
 */
import type { Config } from "./config.ts";
import { openDatabase, type Database } from "./db/database.ts";
import { applyMigrations } from "./db/migrate.ts";
import { tightenExistingDir } from "./db/private-dir.ts";
import type { Logger } from "./log.ts";
import type { AppDeps } from "./app.ts";
import { systemClock, type Clock } from "./clock.ts";
import { createAuditWriter, type AuditWriter, type AuditWriterOptions } from "./audit/writer.ts";
import { AnchorFile } from "./audit/anchors.ts";
import type { CheckpointSigner } from "./audit/chain.ts";
import { resolveKek } from "./keys/kek.ts";
import { storedKekIds } from "./keys/repository.ts";
import { createKeyService, type ManagedKeyService } from "./keys/service.ts";
import { oauthTokenRewrappable } from "./tokens/rewrap.ts";
import { ServiceUnavailableError } from "./errors.ts";
import { createAccessServices, type AccessServices } from "./access/index.ts";
import { TokenRefresher } from "./tokens/refresh.ts";
import { TokenVault } from "./tokens/vault.ts";
import { TokenRevoker } from "./tokens/revoke.ts";
import { WebhookService } from "./webhooks/service.ts";
import { webhookOutbox } from "./webhooks/events.ts";
import { webhookSecretKey } from "./crypto/webhook.ts";
import { TokenProxy } from "./proxy/service.ts";
import type { Resolver } from "./proxy/address.ts";
import { ScheduleStore } from "./keys/schedule.ts";
import { createMetrics, type Metrics } from "./metrics/index.ts";

export interface Runtime {
  config: Config;
  db: Database;
  log: Logger;
  audit: AuditWriter;
  keys: ManagedKeyService;
  access: AccessServices;
  tokens: TokenVault;
  proxy: TokenProxy;
  webhooks: WebhookService;
  /** The rotation schedule (run by src/keys/scheduler.ts in the server). */
  schedule: ScheduleStore;
  metrics: Metrics;
  clock: Clock;
  appDeps(): AppDeps;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  /** Run migrations at start; defaults to config.migrateOnStart. */
  migrate?: boolean;
  /** Use this already-open database instead of opening config.database (tests). */
  db?: Database;
  /** Whether close() closes the database too (default: only when the runtime opened it). */
  ownsDb?: boolean;
  /** Time for every service (tests put the service at 03:00). */
  clock?: Clock;
  /** Fault injection inside the audit write transaction (tests only). */
  auditOnStep?: AuditWriterOptions["onStep"];
  /** Maintenance scripts: reach a running owner of the embedded database through its socket (src/db/owner-socket.ts). */
  throughOwner?: boolean;
  /**
   * Scripts log to stderr: they pass false so the development-KEK warning is printed once (the
   * human line), not also as a JSON log line. Default true (the service logs it too).
   */
  logDevKek?: boolean;
  /** DNS for the proxy's address check (tests point a public base at 127.0.0.1). */
  resolve?: Resolver;
}

export async function createRuntime(config: Config, log: Logger, opts: RuntimeOptions = {}): Promise<Runtime> {
  // DATA_DIR holds the development KEK and the embedded database's lock: private, even if it existed looser.
  tightenExistingDir(config.dataDir);
  const db = opts.db ?? (await openDatabase(config.database, { throughOwner: opts.throughOwner }));
  const ownsDb = opts.ownsDb ?? opts.db === undefined;
  const clock = opts.clock ?? systemClock;
  // Audit checkpoints are signed by the master key, and key events are audited: the signer
  // reaches the key service through this holder, filled as soon as the keys are loaded.
  let signingKeys: ManagedKeyService | undefined;
  const auditSigner: CheckpointSigner = (payload, typ) => {
    if (!signingKeys) throw new ServiceUnavailableError("master key not loaded yet");
    return signingKeys.sign(payload, typ);
  };
  const metrics = createMetrics();
  const audit = createAuditWriter({
    onBatch: metrics.observeAuditBatch,
    db,
    clock,
    log: log.child({ component: "audit" }),
    signer: auditSigner,
    checkpointEvery: config.auditCheckpointEvery,
    checkpointSeconds: config.auditCheckpointSeconds,
    writeTimeoutMs: config.auditWriteTimeoutMs,
    // Webhook events are derived from audit rows and enter the outbox in the same statement.
    outbox: webhookOutbox,
    ...(config.auditAnchorFile ? { anchors: new AnchorFile(config.auditAnchorFile) } : {}),
    ...(opts.auditOnStep ? { onStep: opts.auditOnStep } : {}),
  });
  let kekForWebhooks: { key: Uint8Array; kekId: string } | undefined;
  let keys: ManagedKeyService | undefined;
  let access: AccessServices;
  try {
    // Through a running owner of the embedded database, migrating is the owner's job (it did at start).
    if ((opts.migrate ?? config.migrateOnStart) && !db.owner) {
      const applied = await applyMigrations(db);
      if (applied.length > 0) log.info("migrations applied", { applied });
    }
    // A wrong KEK (KekMismatchError) stops startup here, naming both fingerprints.
    // Without a KEK outside production the development KEK is used; if its file is gone while
    // master keys exist, resolveKek refuses (naming the KEK they need) instead of making a new one.
    const wrappedBy = config.kek === undefined && !config.isProduction ? await storedKekIds(db) : [];
    const { kek, kekId } = resolveKek(config, log, undefined, { wrappedBy, logDevKek: opts.logDevKek });
    kekForWebhooks = { key: webhookSecretKey(kek), kekId };
    keys = await createKeyService({
      db,
      kek,
      kekId,
      sliceSeconds: config.sliceSeconds,
      log: log.child({ component: "keys" }),
      clock,
      audit,
      onLoaded: (svc) => (signingKeys = svc),
      rewrappables: [oauthTokenRewrappable(db, audit)],
    });
    // Chains left unsealed by processes that are gone (a crash) get their recovery checkpoint now.
    await audit
      .sealAbandonedChains()
      .catch((err) => log.error("sealing abandoned audit chains failed; the periodic sweep retries", { err }));
    // Loads the policies and installs BOOTSTRAP_ADMIN_KEY (a malformed one stops startup).
    access = await createAccessServices({ config, db, audit, keys, clock, log });
  } catch (err) {
    await audit.close().catch(() => {});
    keys?.close();
    if (ownsDb) await db.close();
    throw err;
  }
  const ready = keys;
  const tokenLog = log.child({ component: "tokens" });
  const refresher = new TokenRefresher({
    db,
    keys,
    audit,
    clock,
    log: tokenLog,
    providers: config.providers,
    timeoutMs: config.refreshTimeoutMs,
    backoff: config.refreshBackoff,
  });
  const revoker = new TokenRevoker({
    keys,
    audit,
    log: tokenLog,
    endpoints: config.providerEndpoints,
    providers: config.providers,
    timeoutMs: config.revokeTimeoutMs,
  });
  const tokens = new TokenVault({ db, keys, audit, decider: access.decider, refresher, revoker, clock, log: tokenLog });
  const proxy = new TokenProxy({
    vault: tokens,
    audit,
    log: log.child({ component: "proxy" }),
    endpoints: config.providerEndpoints,
    limits: config.proxy,
    ...(opts.resolve ? { resolve: opts.resolve } : {}),
  });
  const webhooks = new WebhookService({
    db,
    audit,
    clock,
    log: log.child({ component: "webhooks" }),
    secretKey: kekForWebhooks!.key,
    kekId: kekForWebhooks!.kekId,
    config: config.webhooks,
  });
  const schedule = new ScheduleStore({ db, audit, clock });
  metrics.bind({ db, clock, versions: () => ready.versions() });
  // Closed in reverse: webhooks (finish a round), tokens (flush lastUsed), then access (flush API-key lastUsedAt, LISTEN).
  const closers: Array<() => Promise<void>> = [() => access.close(), () => tokens.close(), () => webhooks.close()];
  const services = { config, db, log, audit, keys: ready, access, tokens, proxy, webhooks, schedule, metrics };
  return {
    ...services,
    clock,
    appDeps: () => ({ ...services, readiness: [{ name: "masterKey", check: () => ready.health() }] }),
    async close() {
      for (const close of closers.reverse()) await close();
      // Services above may still record while they shut down; the audit log's closing
      // checkpoint is signed by the master key, so keys close after it, the database last.
      await audit.close();
      ready.close();
      if (ownsDb) await db.close();
    },
  };
}
