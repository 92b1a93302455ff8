// Fake of the external profile service the backend enriches messages from:
//   POST /api/batch/profiles  {user_uuids: string[], business_uuids: string[]}  (Bearer token)
//   -> {users: [{uuid, name, avatar_url}], businesses: [{uuid, name, avatar_url}]}
// Names are derived from the uuid so every run (and every process) agrees on them; unknown ids are left out.
import http from "node:http";
import { LOOPBACK_HOST, listenLoopback } from "./ports.js";
import {
  closeHttpServer,
  handleControl,
  hasBearer,
  isRecord,
  pickFields,
  readBody,
  sendGarbage,
  sendJson,
  sleep,
  tryParseJson,
} from "./http-util.js";

/** Any id starting with this is unknown to the service (the brief's fixed "missing profile" id). */
export const UNKNOWN_ID_PREFIX = "00000000-0000-4000-8000-0000000000ff";

export interface Profile {
  uuid: string;
  name: string;
  avatar_url: string;
}

export interface ProfileServiceOptions {
  port: number;
  token: string;
  /** Ids to treat as unknown besides the UNKNOWN_ID_PREFIX rule. */
  unknownIds?: Iterable<string>;
  portEnvName?: string;
}

export interface ProfileFault {
  delayMs: number;
  /** Answer 500. */
  fail: boolean;
  /** Answer 200 with a body that is not JSON. */
  garbage: boolean;
  /** Leave out every second requested id (per list), as a service with partial data would. */
  partial: boolean;
}

export interface ProfileStats {
  /** Batch requests received, whatever their outcome. */
  calls: number;
  /** Parsed body of the last batch request (null before the first). */
  lastBody: unknown;
}

export interface ProfileServiceHandle {
  url: string;
  port: number;
  token: string;
  /** Mutable: add or remove ids to make them unknown. */
  unknownIds: Set<string>;
  close(): Promise<void>;
  /** Overrides the generated profile for uuid (user or business); also makes an unknown id known. */
  setProfile(uuid: string, profile: { name: string; avatar_url: string }): void;
  clearProfiles(): void;
  /** Replaces the whole fault state: fields left out are reset. */
  setFault(fault: Partial<ProfileFault>): void;
  fault(): ProfileFault;
  stats(): ProfileStats;
  resetStats(): void;
}

const FIRST_NAMES = [
  "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Liam", "Maya",
  "Nils", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Ximena", "Yusuf", "Zoe",
];
const BUSINESS_PREFIXES = [
  "Acme", "Blue Oak", "Cedar", "Delta", "Evergreen", "Foxglove", "Golden", "Harbor", "Iron", "Juniper",
  "Kestrel", "Lumen", "Maple", "Northwind", "Orchid", "Pioneer",
];
const BUSINESS_KINDS = [
  "Bakery", "Bikes", "Books", "Cafe", "Clinic", "Coffee", "Dental", "Florist", "Garage", "Gym", "Hardware",
  "Laundry", "Pharmacy", "Salon", "Studio", "Tailors",
];

/** FNV-1a: tiny, stable across processes, good enough to spread uuids over the name lists. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function avatarUrl(uuid: string): string {
  return `https://avatars.example.test/${uuid}.png`;
}

/** "Maya 3f2a": the suffix (start of the uuid) keeps names distinguishable in logs and UIs. */
export function userName(uuid: string): string {
  const id = uuid.toLowerCase();
  return `${FIRST_NAMES[hash(id) % FIRST_NAMES.length]} ${id.replace(/-/g, "").slice(0, 4)}`;
}

export function businessName(uuid: string): string {
  const h = hash(uuid.toLowerCase());
  return `${BUSINESS_PREFIXES[h % BUSINESS_PREFIXES.length]} ${BUSINESS_KINDS[(h >>> 8) % BUSINESS_KINDS.length]}`;
}

function stringArray(v: unknown): string[] | null {
  return Array.isArray(v) && v.every((x) => typeof x === "string") ? (v as string[]) : null;
}

const NO_FAULT: ProfileFault = { delayMs: 0, fail: false, garbage: false, partial: false };

export async function startProfileService(opts: ProfileServiceOptions): Promise<ProfileServiceHandle> {
  const unknownIds = new Set<string>([...(opts.unknownIds ?? [])].map((id) => id.toLowerCase()));
  const overrides = new Map<string, { name: string; avatar_url: string }>();
  let fault: ProfileFault = { ...NO_FAULT };
  let calls = 0;
  let lastBody: unknown = null;

  const setFault = (f: Partial<ProfileFault>): void => {
    fault = { ...NO_FAULT, ...f, delayMs: Math.max(0, f.delayMs ?? 0) };
  };
  const resetStats = (): void => {
    calls = 0;
    lastBody = null;
  };

  const lookup = (ids: string[], makeName: (uuid: string) => string): Profile[] => {
    const out: Profile[] = [];
    const seen = new Set<string>();
    ids.forEach((uuid, i) => {
      const key = uuid.toLowerCase();
      if (seen.has(key)) return;
      seen.add(key);
      if (fault.partial && i % 2 === 1) return;
      const override = overrides.get(key);
      if (override) out.push({ uuid, ...override });
      else if (!key.startsWith(UNKNOWN_ID_PREFIX) && !unknownIds.has(key) && !unknownIds.has(uuid)) {
        out.push({ uuid, name: makeName(uuid), avatar_url: avatarUrl(uuid) });
      }
    });
    return out;
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://local").pathname;
    const control = await handleControl(req, res, path, {
      token: opts.token,
      applyFault: (raw) =>
        setFault(pickFields(raw, { delayMs: "number", fail: "boolean", garbage: "boolean", partial: "boolean" }) as Partial<ProfileFault>),
      resetStats,
      snapshot: () => ({ calls, lastBody, fault }),
    });
    if (control) return;
    if (path === "/health" && req.method === "GET") return sendJson(res, 200, { ok: true });
    if (path !== "/api/batch/profiles") return sendJson(res, 404, { error: "Not found" });
    if (req.method !== "POST") return sendJson(res, 405, { error: "Method not allowed" });

    calls++;
    const text = await readBody(req);
    const body = tryParseJson(text);
    lastBody = body ?? text;
    if (fault.delayMs > 0) await sleep(fault.delayMs);
    if (!hasBearer(req, opts.token)) return sendJson(res, 401, { error: "Unauthorized" });
    if (fault.fail) return sendJson(res, 500, { error: "Internal Server Error (injected fault)" });

    const users = isRecord(body) ? stringArray(body.user_uuids ?? []) : null;
    const businesses = isRecord(body) ? stringArray(body.business_uuids ?? []) : null;
    if (!users || !businesses) {
      return sendJson(res, 400, { error: "expected {user_uuids: string[], business_uuids: string[]}" });
    }
    if (fault.garbage) return sendGarbage(res);
    sendJson(res, 200, { users: lookup(users, userName), businesses: lookup(businesses, businessName) });
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: `internal: ${(err as Error).message}` });
      else res.destroy();
    });
  });
  const port = await listenLoopback(server, opts.port, opts.portEnvName);

  return {
    url: `http://${LOOPBACK_HOST}:${port}`,
    port,
    token: opts.token,
    unknownIds,
    close: () => closeHttpServer(server),
    setProfile(uuid, profile) {
      overrides.set(uuid.toLowerCase(), { name: profile.name, avatar_url: profile.avatar_url });
    },
    clearProfiles: () => overrides.clear(),
    setFault,
    fault: () => ({ ...fault }),
    stats: () => ({ calls, lastBody }),
    resetStats,
  };
}
