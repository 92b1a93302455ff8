// Small HTTP helpers shared by the REST stand-ins (redis-rest.ts, profile-service.ts).
import type http from "node:http";

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** A 200 whose body is not JSON, to exercise clients' parse-failure paths. */
export function sendGarbage(res: http.ServerResponse): void {
  res.writeHead(200, { "content-type": "application/json" });
  res.end('{"result": <<garbage');
}

export function readBody(req: http.IncomingMessage, limitBytes = 8 * 1024 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limitBytes) {
        reject(new Error("request body too large"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** Parses JSON, or returns undefined for an invalid body (JSON itself never yields undefined). */
export function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function hasBearer(req: http.IncomingMessage, token: string): boolean {
  return req.headers.authorization === `Bearer ${token}`;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Copies the listed fields of raw that have the expected primitive type; everything else is ignored. */
export function pickFields<K extends string>(
  raw: unknown,
  spec: Record<K, "boolean" | "number">,
): Partial<Record<K, boolean | number>> {
  const out: Partial<Record<K, boolean | number>> = {};
  if (!isRecord(raw)) return out;
  for (const key of Object.keys(spec) as K[]) {
    const v = raw[key];
    if (typeof v === spec[key]) out[key] = v as boolean | number;
  }
  return out;
}

export interface ControlHooks {
  token: string;
  /** Applies the "fault" object of a control request (already a parsed JSON value). */
  applyFault(raw: unknown): void;
  resetStats(): void;
  /** Body of GET /__control/stats and of the POST reply. */
  snapshot(): unknown;
}

/**
 * Out-of-process fault control: POST /__control {fault?, resetStats?} and GET /__control/stats, behind the
 * service's bearer token. Never subject to the injected faults themselves. Returns false when the request
 * is not a control request.
 */
export async function handleControl(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  path: string,
  hooks: ControlHooks,
): Promise<boolean> {
  if (path !== "/__control" && path !== "/__control/stats") return false;
  if (!hasBearer(req, hooks.token)) {
    sendJson(res, 401, { error: "Unauthorized" });
    return true;
  }
  if (path === "/__control/stats" && req.method === "GET") {
    sendJson(res, 200, hooks.snapshot());
    return true;
  }
  if (path === "/__control" && req.method === "POST") {
    const body = tryParseJson(await readBody(req));
    if (!isRecord(body)) {
      sendJson(res, 400, { error: "expected a JSON object {fault?, resetStats?}" });
      return true;
    }
    if ("fault" in body) hooks.applyFault(body.fault);
    if (body.resetStats === true) hooks.resetStats();
    sendJson(res, 200, hooks.snapshot());
    return true;
  }
  sendJson(res, 405, { error: "Method not allowed" });
  return true;
}

export function closeHttpServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive connections (fetch keeps them by default) would otherwise hold close() open.
    server.closeAllConnections();
  });
}
