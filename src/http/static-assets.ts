/**
 * The few files the service serves itself (Swagger UI's assets at /docs, the console's script,
 * stylesheet and icon): a fixed name → asset table. Each body is produced on its first request
 * and kept for the process, so start-up reads and builds nothing; a failed load is not kept, so
 * the next request retries it. A name outside the table is never looked up (no path reaches disk).
 */
export type AssetBody = string | Uint8Array<ArrayBuffer>;

export interface StaticAsset {
  contentType: string;
  cacheControl: string;
  load: () => AssetBody | Promise<AssetBody>;
}

export interface ServedAsset {
  body: AssetBody;
  headers: { "content-type": string; "cache-control": string };
}

/** Returns the lookup for one table: the asset's body and headers, or undefined for an unknown name. */
export function staticAssets(table: Readonly<Record<string, StaticAsset>>) {
  const loaded = new Map<string, Promise<AssetBody>>();
  return async (file: string): Promise<ServedAsset | undefined> => {
    // Own keys only: "constructor" or "toString" are not assets.
    const asset = Object.hasOwn(table, file) ? table[file] : undefined;
    if (!asset) return undefined;
    let body = loaded.get(file);
    if (!body) {
      body = Promise.resolve().then(asset.load);
      loaded.set(file, body);
      body.catch(() => loaded.delete(file));
    }
    return { body: await body, headers: { "content-type": asset.contentType, "cache-control": asset.cacheControl } };
  };
}
