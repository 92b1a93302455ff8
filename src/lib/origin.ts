/**
 * An origin as browsers serialise it in the Origin header: scheme and host in lower case, the port only when it is not
 * the scheme's default, no path. Undefined for text that is not an http(s) origin. Comparing both sides in this form
 * lets an operator write `https://app.example.com:443/` and still match what the browser sends.
 */
export function normalizeOrigin(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return undefined;
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || !url.hostname) return undefined;
  return url.origin;
}
