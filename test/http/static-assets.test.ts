/** staticAssets: the table is the whole set of names, each body is loaded once, a failed load is retried. */
import { expect, test } from "bun:test";
import { staticAssets } from "../../src/http/static-assets.ts";

test("only the table's own names are served, with their headers; each body is loaded once", async () => {
  let loads = 0;
  const asset = staticAssets({
    "a.css": { contentType: "text/css", cacheControl: "no-cache", load: () => `body{} /* ${++loads} */` },
  });
  for (const name of ["b.css", "constructor", "toString", "__proto__", "../a.css", ""])
    expect(await asset(name)).toBeUndefined();
  const [first, second] = await Promise.all([asset("a.css"), asset("a.css")]);
  expect(first).toEqual({
    body: "body{} /* 1 */",
    headers: { "content-type": "text/css", "cache-control": "no-cache" },
  });
  expect(second).toEqual(first);
  expect(loads).toBe(1);
});

test("a load that fails is not kept: the next request loads again", async () => {
  let attempts = 0;
  const asset = staticAssets({
    "x.js": {
      contentType: "text/javascript",
      cacheControl: "no-cache",
      load: async () => {
        if (++attempts === 1) throw new Error("build failed");
        return "ok";
      },
    },
  });
  await expect(asset("x.js")).rejects.toThrow("build failed");
  expect((await asset("x.js"))?.body).toBe("ok");
  expect(attempts).toBe(2);
});
