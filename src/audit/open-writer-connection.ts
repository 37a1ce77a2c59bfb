/** Opens the audit writer's connection for a database (the kinds are in writer-connection.ts). */
import type { Database } from "../db/database.ts";
import { nativeClientOptions } from "../db/native-reader.ts";
import { NativeWriterConnection } from "./native-writer-connection.ts";
import { PostgresWriterConnection, ownerSocketConnection, pgliteConnection } from "./pg-writer-connection.ts";
import type { WriterConnection } from "./writer-connection.ts";

export function writerConnection(db: Database, writeTimeoutMs: number): WriterConnection {
  if (db.kind === "postgres") {
    const options = db.pool!.options;
    const pgConnection = () => new PostgresWriterConnection(options, writeTimeoutMs);
    const native = options.connectionString ? nativeClientOptions(options.connectionString, 1) : undefined;
    return native ? new NativeWriterConnection(native, writeTimeoutMs, pgConnection) : pgConnection();
  }
  if (db.pglite) return pgliteConnection(db.pglite);
  return ownerSocketConnection(db.pool!);
}
