/** Random ids from Web Crypto's getRandomValues (available in browsers, also outside secure contexts, and in Node 20). */
export function randomId(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  let h = "";
  for (const x of b) h += x.toString(16).padStart(2, "0");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The `id` claim of a JWT, read without verification (the server verifies; the SDK only needs to know who it is). */
export function userIdFromToken(token: string): string | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const claims = JSON.parse(json) as { id?: unknown };
    return typeof claims.id === "string" ? claims.id.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}
