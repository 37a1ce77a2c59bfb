/** Who is calling: the authenticated requester behind an API key. */

export type Role = "admin" | "writer" | "reader" | "exporter" | "proxy";
export const ROLES: readonly Role[] = ["admin", "writer", "reader", "exporter", "proxy"];

export interface Principal {
  /** Internal requester row id. */
  id: string;
  /** External requester id (requesters.requesterId); what policies and audit rows name. */
  requesterId: string;
  department: string | null;
  /** Public part of the API key used. */
  keyId: string;
  roles: readonly Role[];
  /** The requester's registered P-256 public JWK, if any (grants are encrypted to it). */
  publicKeyJwk: JsonWebKey | null;
}
