/** The signed-in demo user for this tab. sessionStorage: each tab can be a different user, and nothing outlives the tab. */
export interface Session {
  token: string;
  userId: string;
  kahaId: string;
}

const KEY = "edge-chat.session";

export function loadSession(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return undefined;
    const s = JSON.parse(raw) as Partial<Session>;
    if (typeof s.token !== "string" || typeof s.userId !== "string" || typeof s.kahaId !== "string") return undefined;
    return s as Session;
  } catch {
    return undefined;
  }
}

export function saveSession(s: Session): void {
  try {
    sessionStorage.setItem(KEY, JSON.stringify(s));
  } catch {
    // storage disabled: the session lasts until reload
  }
}

export function clearSession(): void {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // ignore
  }
}
