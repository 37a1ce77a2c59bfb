/**
 * The access-request flow behind `POST /v1/access-requests` (plan → durable decision → key
 * material) and the admin listing of past requests with keyset pagination.
 */
import type { Database } from "../db/database.ts";
import type { Clock } from "../clock.ts";
import type { KeyService } from "../keys/types.ts";
import { BadRequestError } from "../errors.ts";
import type { AccessRequestBody } from "./request-body.ts";
import type { AccessRequest, Prisma } from "../db/generated/client.ts";
import type { Principal } from "./principal.ts";
import type { AccessDecider } from "./types.ts";
import { issueGrant, planOrUnavailable, prepareGrant, type GrantBody } from "./grants.ts";
import { decodeCursor, encodeCursor, olderThan, type Page, pageOf } from "../lib/keyset-cursor.ts";

export interface DenialBody {
  id: string;
  granted: false;
  error: { code: "ACCESS_DENIED"; message: string };
  policyId: string | null;
  reason: string;
  /** Additions to SPEC §5's shape: the stable denial code and the HTTP request id. */
  reasonCode: string;
  requestId?: string;
}

export type AccessRequestResult = { status: 201; body: GrantBody } | { status: 403; body: DenialBody };

export interface AccessRequestView {
  id: string;
  requesterId: string;
  resourceType: string;
  resource: unknown;
  startTime: string;
  endTime: string;
  purpose: string | null;
  granted: boolean;
  denialReason: string | null;
  policyIds: string[];
  policyId: string | null;
  keyCount: number | null;
  createdAt: string;
}

export interface AccessRequestFilter {
  requesterId?: string;
  granted?: boolean;
  resourceType?: "token" | "timeslice";
  /** When the request was made: epoch ms, half-open [from, to) like every list window. */
  from?: number;
  to?: number;
  limit: number;
  cursor?: string;
}

export interface AccessRequestServiceOptions {
  db: Database;
  keys: KeyService;
  decider: AccessDecider;
  clock: Clock;
}

export class AccessRequestService {
  constructor(private readonly o: AccessRequestServiceOptions) {}

  /** Time-slice requests only: token reads are decided on GET /v1/tokens/{integration}/{userId}. */
  async request(principal: Principal, body: AccessRequestBody): Promise<AccessRequestResult> {
    if (body.resource.type !== "timeslice") {
      throw new BadRequestError(
        "token access is requested by reading the token: GET /v1/tokens/{integration}/{userId}",
      );
    }
    const plan = await planOrUnavailable(this.o.keys, body.timeRange, body.keyVersion);
    const pending = this.o.decider.begin(
      principal,
      body,
      "unavailable" in plan ? { unavailable: plan.unavailable } : { keyCount: plan.keyCount, covered: plan.covered },
    );
    const { id, decision } = pending;
    // The key material is derived while the decision is committed (the CPU work overlaps the
    // database's), and released only once the decision is durable: on a failed write it is dropped.
    const material = decision.allowed && !("unavailable" in plan) ? prepareGrant(plan) : null;
    await pending.durable;
    if (!decision.allowed) {
      return {
        status: 403,
        body: {
          id,
          granted: false,
          error: { code: "ACCESS_DENIED", message: decision.reason },
          policyId: decision.policyId,
          reason: decision.reason,
          reasonCode: decision.code,
        },
      };
    }
    // The decider never grants when the version is unavailable; this is the type's proof of it.
    if (material === null) throw new Error("a grant was decided for an unavailable key version");
    return {
      status: 201,
      body: await issueGrant(await material, { id, now: this.o.clock.now(), publicKeyJwk: principal.publicKeyJwk }),
    };
  }

  /** Newest first; `nextCursor` continues after the last item. */
  async list(f: AccessRequestFilter): Promise<Page<AccessRequestView>> {
    const and: Prisma.AccessRequestWhereInput[] = [];
    if (f.requesterId !== undefined) and.push({ requesterId: f.requesterId });
    if (f.granted !== undefined) and.push({ granted: f.granted });
    if (f.resourceType !== undefined) and.push({ resourceType: f.resourceType });
    if (f.from !== undefined) and.push({ createdAt: { gte: new Date(f.from) } });
    // Half-open [from, to), like every list window (lib/schemas.ts).
    if (f.to !== undefined) and.push({ createdAt: { lt: new Date(f.to) } });
    if (f.cursor !== undefined) {
      const c = decodeCursor(f.cursor);
      and.push(olderThan("createdAt", new Date(c.timeMs), c.id));
    }
    const rows = await this.o.db.prisma.accessRequest.findMany({
      where: { AND: and },
      orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      take: f.limit + 1,
    });
    return pageOf(rows, f.limit, viewOf, (last) => encodeCursor(last.createdAt.getTime(), last.id));
  }
}

function viewOf(r: AccessRequest): AccessRequestView {
  return {
    id: r.id,
    requesterId: r.requesterId,
    resourceType: r.resourceType,
    resource: r.resource,
    startTime: r.startTime.toISOString(),
    endTime: r.endTime.toISOString(),
    purpose: r.purpose,
    granted: r.granted,
    denialReason: r.denialReason,
    policyIds: r.policyIds,
    policyId: r.policyId,
    keyCount: r.keyCount,
    createdAt: r.createdAt.toISOString(),
  };
}
