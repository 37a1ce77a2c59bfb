/**
 * Whether an IP address is one a proxied call must never reach when the operator did not choose
 * the base (loopback, private, link-local, CGNAT, multicast, unspecified, documentation ranges;
 * IPv4-mapped IPv6 judged as IPv4), and the resolver that looks a host up (injectable for tests).
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

export type Resolver = (hostname: string) => Promise<string[]>;

/** The system resolver, bounded (a resolver that never answers must not hold a request forever). */
export const systemResolver: Resolver = async (hostname) => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error("DNS lookup timed out")), 5_000)),
  );
  try {
    return (await Promise.race([lookup(hostname, { all: true, verbatim: true }), timeout])).map((a) => a.address);
  } finally {
    clearTimeout(timer);
  }
};

function v4ToInt(ip: string): number {
  return ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

// [network, prefix length]: RFC 6890 special-purpose ranges that are not the public internet.
const V4_BLOCKED: Array<[string, number]> = [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
];

function v4Blocked(ip: string): boolean {
  const n = v4ToInt(ip);
  return V4_BLOCKED.some(
    ([net, bits]) => Math.floor(n / 2 ** (32 - bits)) === Math.floor(v4ToInt(net) / 2 ** (32 - bits)),
  );
}

/** Expands an IPv6 address to 8 numbers. */
function v6Words(ip: string): number[] {
  let s = ip.toLowerCase().split("%")[0]!;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = v4ToInt(v4[1]!);
    tail = [Math.floor(n / 65536), n % 65536];
    s = `${s.slice(0, -v4[1]!.length)}0:0`;
  }
  const [head, rest] = s.split("::") as [string, string | undefined];
  const a = head
    ? head
        .split(":")
        .filter(Boolean)
        .map((h) => parseInt(h, 16))
    : [];
  const b = rest !== undefined && rest !== "" ? rest.split(":").map((h) => parseInt(h, 16)) : [];
  const words = rest === undefined ? a : [...a, ...new Array(8 - a.length - b.length).fill(0), ...b];
  if (tail.length) words.splice(6, 2, ...tail);
  return words;
}

export function isPrivateAddress(ip: string): boolean {
  const kind = isIP(ip.split("%")[0]!);
  if (kind === 4) return v4Blocked(ip);
  if (kind !== 6) return true; // not an address at all: refuse
  const w = v6Words(ip);
  if (w.length !== 8) return true;
  const [w0, , , , , w5, w6, w7] = w as [number, number, number, number, number, number, number, number];
  const zeroPrefix = w.slice(0, 5).every((x) => x === 0);
  if (zeroPrefix && w5 === 0xffff) return v4Blocked(`${w6 >> 8}.${w6 & 255}.${w7 >> 8}.${w7 & 255}`); // ::ffff:a.b.c.d
  if (zeroPrefix && w5 === 0 && w6 === 0 && (w7 === 0 || w7 === 1)) return true; // :: and ::1
  if (w0 === 0x64 && w[1] === 0xff9b) return v4Blocked(`${w6 >> 8}.${w6 & 255}.${w7 >> 8}.${w7 & 255}`); // NAT64
  if (w0 === 0x2002) return v4Blocked(`${w[1]! >> 8}.${w[1]! & 255}.${w[2]! >> 8}.${w[2]! & 255}`); // 6to4
  if ((w0 & 0xfe00) === 0xfc00) return true; // fc00::/7 unique local
  if ((w0 & 0xffc0) === 0xfe80 || (w0 & 0xffc0) === 0xfec0) return true; // link-local, site-local
  if ((w0 & 0xff00) === 0xff00) return true; // multicast
  if (w0 === 0x2001 && w[1] === 0x0db8) return true; // documentation
  return false;
}
