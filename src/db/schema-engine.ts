/**
 * Prisma's WebAssembly schema engine, driven through a driver adapter. The native engine cannot be
 * downloaded on our network; this is the same engine compiled to WASM, so migrations are applied
 * and recorded in `_prisma_migrations` exactly as `prisma migrate deploy` would.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { readFileSync } from "node:fs";
import {
  bindMigrationAwareSqlAdapterFactory,
  type SqlDriverAdapter,
  type SqlMigrationAwareDriverAdapterFactory,
} from "@prisma/driver-adapter-utils";
import type { SchemaEngine } from "@prisma/schema-engine-wasm/schema_engine_bg";

type EngineModule = typeof import("@prisma/schema-engine-wasm/schema_engine_bg");

export const emptySchemaFilter = { externalTables: [] as string[], externalEnums: [] as string[] };

let modulePromise: Promise<EngineModule> | undefined;

// The package's own entry imports the .wasm as an ES module, which Node cannot do without flags;
// instantiating it by hand works on Bun and Node alike.
function loadEngineModule(): Promise<EngineModule> {
  modulePromise ??= (async () => {
    const require = createRequire(import.meta.url);
    const gluePath = require.resolve("@prisma/schema-engine-wasm/schema_engine_bg");
    const glue = (await import("@prisma/schema-engine-wasm/schema_engine_bg")) as EngineModule;
    const wasmModule = new WebAssembly.Module(readFileSync(join(dirname(gluePath), "schema_engine_bg.wasm")));
    const instance = new WebAssembly.Instance(wasmModule, {
      "./schema_engine_bg.js": glue as unknown as WebAssembly.ModuleImports,
    });
    (glue as unknown as { __wbg_set_wasm(w: unknown): void }).__wbg_set_wasm(instance.exports);
    (instance.exports as unknown as { __wbindgen_start(): void }).__wbindgen_start();
    return glue;
  })();
  return modulePromise;
}

/** Runs `fn` with an engine connected through `factory`; the engine is freed afterwards. */
export async function withSchemaEngine<T>(
  factory: SqlMigrationAwareDriverAdapterFactory,
  fn: (engine: SchemaEngine) => Promise<T>,
): Promise<T> {
  const glue = await loadEngineModule();
  // engine.free() does not close the connections it opened. One left open keeps holding the
  // engine's own advisory lock, and the next engine waits out its 10 s lock timeout.
  const opened: SqlDriverAdapter[] = [];
  const tracked: SqlMigrationAwareDriverAdapterFactory = {
    provider: factory.provider,
    adapterName: factory.adapterName,
    connect: async () => track(await factory.connect()),
    connectToShadowDb: async () => track(await factory.connectToShadowDb()),
  };
  const track = (a: SqlDriverAdapter) => {
    opened.push(a);
    return a;
  };
  const engine = await glue.SchemaEngine.new(
    { datamodels: undefined },
    () => {},
    bindMigrationAwareSqlAdapterFactory(tracked),
  );
  try {
    return await fn(engine);
  } finally {
    engine.free();
    await Promise.allSettled(opened.map((a) => a.dispose()));
  }
}
