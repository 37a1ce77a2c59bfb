/**
 * A PostgreSQL LISTEN on its own connection (outside the pool, which would hand it back), with
 * reconnects every second after an error. `onListening` runs after every (re)connect: whatever
 * was sent while nobody listened is lost, so the caller resynchronises there. PGlite is one
 * process: there is nobody to hear from, and this does nothing.
 */
import pg from "pg";
import type { Database } from "./database.ts";
import type { Logger } from "../log.ts";

export interface ChannelListener {
  close(): Promise<void>;
}

export function listenChannel(
  db: Database,
  channel: string,
  handlers: { onNotify: (payload: string) => void; onListening: () => void },
  log: Logger,
): ChannelListener {
  if (db.kind !== "postgres" || !db.pool) return { close: async () => {} };
  if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`bad channel name ${channel}`);
  const options = db.pool.options;
  let closed = false;
  let current: pg.Client | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const connect = async (): Promise<void> => {
    if (closed) return;
    const client = new pg.Client(options);
    current = client;
    const retry = () => {
      if (closed || current !== client) return;
      current = undefined;
      client.end().catch(() => {});
      timer = setTimeout(() => void connect(), 1000);
      timer.unref?.();
    };
    client.on("error", retry);
    client.on("end", retry);
    client.on("notification", (m) => {
      if (m.channel === channel) handlers.onNotify(m.payload ?? "");
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${channel}`);
      handlers.onListening();
    } catch (err) {
      log.warn("LISTEN connection failed; retrying", { channel, err });
      retry();
    }
  };
  void connect();

  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      const c = current;
      current = undefined;
      await c?.end().catch(() => {});
    },
  };
}

/**
 * NOTIFY on PostgreSQL; nothing on PGlite (one process, nobody else to tell). Never rejects: a
 * lost notification is the listener's poll or cache TTL to heal, so it is logged, not thrown.
 */
export async function notifyChannel(db: Database, channel: string, payload: string, log: Logger): Promise<void> {
  if (db.kind !== "postgres") return;
  await db.prisma.$executeRaw`SELECT pg_notify(${channel}, ${payload})`.catch((err) =>
    log.warn("change notification failed; listeners fall back to polling", { channel, err }),
  );
}
