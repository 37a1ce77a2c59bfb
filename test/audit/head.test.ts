/**
 * GET /v1/audit-logs/head (signed current heads for an external monitor) and the verify endpoint
 * checking the database against the anchor log (AUDIT_ANCHOR_FILE), on both databases.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeEachDb } from "../support/databases.ts";
import { asAdmin, startTestApp, type TestApp } from "../support/app.ts";
import { readAnchorFile, type AnchorEntry } from "../../src/audit/anchors.ts";
import { verifyAuditLog } from "../../src/audit/verify.ts";
import { asSuperuser, trustedKeys } from "./helpers.ts";

describeEachDb("audit heads and anchors over HTTP", (h) => {
  let t: TestApp;
  let dir: string;
  let anchorFile: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "chronokms-head-"));
    anchorFile = join(dir, "audit-anchors.jsonl");
    t = await startTestApp(h.db, { env: { AUDIT_ANCHOR_FILE: anchorFile } });
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("head: this process's chain is checkpointed first; every head verifies as an anchor; the anchor log holds them too", async () => {
    for (let i = 0; i < 3; i++)
      expect(
        (
          await t.app.request(
            "/v1/policies",
            asAdmin({
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({
                name: `p-${i}`,
                type: "whitelist",
                enabled: false,
                config: { requesters: ["x"] },
              }),
            }),
          )
        ).status,
      ).toBe(201);
    const res = await t.app.request("/v1/audit-logs/head", asAdmin());
    expect(res.status).toBe(200);
    const { heads } = (await res.json()) as { heads: AnchorEntry[] };
    const mine = heads.find((x) => x.chainId === t.runtime.audit.stats().chainId);
    expect(mine).toBeDefined();
    // Nothing after the head: the chain's last row is that checkpoint.
    expect(mine!.seq).toBe(t.runtime.audit.stats().seq);
    // A monitor can hand the heads back as anchors.
    expect(await verifyAuditLog(h.db, { ...(await trustedKeys(h.db)), anchors: heads })).toMatchObject({ valid: true });
    await t.runtime.audit.flush();
    const anchored = (await readAnchorFile(anchorFile)).entries;
    expect(anchored.some((a) => a.chainId === mine!.chainId && a.seq === mine!.seq && a.hash === mine!.hash)).toBe(
      true,
    );
    expect((await t.app.request("/v1/audit-logs/head?x=1", asAdmin())).status).toBe(400);
    expect((await t.app.request("/v1/audit-logs/head")).status).toBe(401);
  });

  test("verify checks the database against the anchor log: valid, then the anchored tail deleted → anchor-missing", async () => {
    await t.app.request("/v1/audit-logs/head", asAdmin()); // one more signed head, anchored
    await t.runtime.audit.flush();
    const ok = (await (await t.app.request("/v1/audit-logs/verify", asAdmin())).json()) as {
      valid: boolean;
      anchorsChecked: number;
      findings: unknown[];
    };
    expect(ok).toMatchObject({ valid: true, findings: [] });
    expect(ok.anchorsChecked).toBeGreaterThan(0);
    const chainId = t.runtime.audit.stats().chainId!;
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "chainId" = $1 AND "seq" > 2`, [chainId]);
    const bad = (await (await t.app.request("/v1/audit-logs/verify", asAdmin())).json()) as {
      valid: boolean;
      findings: Array<{ kind: string; chainId: string }>;
    };
    expect(bad.valid).toBe(false);
    expect(bad.findings).toContainEqual(expect.objectContaining({ kind: "anchor-missing", chainId }));
  });
});
