/**
 * The rotation schedule (`key_rotation_schedules`, one row): what `GET|PUT /v1/keys/schedule` read
 * and write, and the bookkeeping the scheduler does on it. Changes are audited (KEY_SCHEDULE_UPDATED).
 */
import { z } from "zod";
import type { AuditEvent, AuditSink, AuditTx } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import type { Database } from "../db/database.ts";
import type { Prisma } from "../db/generated/client.ts";

/** Shortest period a schedule may name (SPEC §12). */
export const MIN_SCHEDULE_SECONDS = 60;
const MAX_SCHEDULE_SECONDS = 100 * 365 * 24 * 3600;

export const ScheduleInputSchema = z
  .object({
    rotateEverySeconds: z.number().int().min(MIN_SCHEDULE_SECONDS).max(MAX_SCHEDULE_SECONDS),
    retireAfterSeconds: z.number().int().min(MIN_SCHEDULE_SECONDS).max(MAX_SCHEDULE_SECONDS).nullable().optional(),
    enabled: z.boolean(),
  })
  .strict();
export type ScheduleInput = z.infer<typeof ScheduleInputSchema>;

export interface RotationSchedule {
  rotateEverySeconds: number;
  retireAfterSeconds: number | null;
  enabled: boolean;
  /** Next scheduled rotation (null while disabled). */
  nextDueAt: Date | null;
  lastRotatedAt: Date | null;
  rotatingFrom: number | null;
  updatedAt: Date;
  updatedBy: string;
}

/** The JSON shape of a schedule (GET /v1/keys/schedule, GET /v1/keys). */
export interface ScheduleView {
  rotateEverySeconds: number | null;
  retireAfterSeconds: number | null;
  enabled: boolean;
  nextDueAt: string | null;
  lastRotatedAt: string | null;
  updatedAt: string | null;
  updatedBy: string | null;
}

export function scheduleView(s: RotationSchedule | null): ScheduleView {
  if (!s)
    return {
      rotateEverySeconds: null,
      retireAfterSeconds: null,
      enabled: false,
      nextDueAt: null,
      lastRotatedAt: null,
      updatedAt: null,
      updatedBy: null,
    };
  return {
    rotateEverySeconds: s.rotateEverySeconds,
    retireAfterSeconds: s.retireAfterSeconds,
    enabled: s.enabled,
    nextDueAt: s.nextDueAt?.toISOString() ?? null,
    lastRotatedAt: s.lastRotatedAt?.toISOString() ?? null,
    updatedAt: s.updatedAt.toISOString(),
    updatedBy: s.updatedBy,
  };
}

type Row = Prisma.KeyRotationScheduleGetPayload<object>;

function toSchedule(r: Row): RotationSchedule {
  return {
    rotateEverySeconds: r.rotateEverySeconds,
    retireAfterSeconds: r.retireAfterSeconds,
    enabled: r.enabled,
    nextDueAt: r.enabled ? r.nextDueAt : null,
    lastRotatedAt: r.lastRotatedAt,
    rotatingFrom: r.rotatingFrom,
    updatedAt: r.updatedAt,
    updatedBy: r.updatedBy,
  };
}

const ID = 1;

export class ScheduleStore {
  constructor(private readonly o: { db: Database; audit?: AuditSink; clock: Clock }) {}

  async get(): Promise<RotationSchedule | null> {
    const r = await this.o.db.prisma.keyRotationSchedule.findUnique({ where: { id: ID } });
    return r ? toSchedule(r) : null;
  }

  /**
   * Sets the schedule. The period counts from now, unless the schedule was already enabled with
   * the same period (re-sending it does not postpone the next rotation). Written in one
   * transaction with its audit row: a failed audit write leaves the previous row (503).
   */
  async put(input: ScheduleInput, actor: string): Promise<RotationSchedule> {
    const { db } = this.o;
    const now = new Date(this.o.clock.now());
    const before = await db.prisma.keyRotationSchedule.findUnique({ where: { id: ID } });
    const keepDue = before?.enabled && input.enabled && before.rotateEverySeconds === input.rotateEverySeconds;
    const data = {
      rotateEverySeconds: input.rotateEverySeconds,
      retireAfterSeconds: input.retireAfterSeconds ?? null,
      enabled: input.enabled,
      nextDueAt: keepDue ? before.nextDueAt : new Date(now.getTime() + input.rotateEverySeconds * 1000),
      updatedAt: now,
      updatedBy: actor,
    };
    const upsert = (tx: AuditTx) =>
      tx.keyRotationSchedule.upsert({ where: { id: ID }, create: { id: ID, ...data }, update: data });
    const event = (row: Awaited<ReturnType<typeof upsert>>): AuditEvent => {
      const s = toSchedule(row);
      return {
        eventType: "KEY_SCHEDULE_UPDATED",
        actor,
        target: "key:schedule",
        success: true,
        details: {
          rotateEverySeconds: s.rotateEverySeconds,
          retireAfterSeconds: s.retireAfterSeconds,
          enabled: s.enabled,
          nextDueAt: s.nextDueAt?.toISOString() ?? null,
        },
      };
    };
    // The schedule and its audit row commit together (one transaction of the audit writer).
    const row = this.o.audit ? await this.o.audit.apply({ change: upsert, event }) : await upsert(db.prisma);
    const s = toSchedule(row);
    return s;
  }

  /** Marks a scheduled rotation away from `version` as under way (see `rotatingFrom`). */
  async markRotating(version: number): Promise<void> {
    await this.o.db.prisma.keyRotationSchedule.update({ where: { id: ID }, data: { rotatingFrom: version } });
  }

  /** After a scheduled rotation: the next one is one period after the one just done (never in the past). */
  async rotated(s: RotationSchedule, at: number): Promise<void> {
    const period = s.rotateEverySeconds * 1000;
    let next = (s.nextDueAt?.getTime() ?? at) + period;
    if (next <= at) next = at + period; // down for several periods: one rotation, not a burst
    await this.o.db.prisma.keyRotationSchedule.update({
      where: { id: ID },
      data: { rotatingFrom: null, nextDueAt: new Date(next), lastRotatedAt: new Date(at) },
    });
  }
}
