/** Per-socket identity, kept in the socket's attachment so it survives hibernation. */
export interface SocketAttachment {
  userId: string;
  kahaId: string;
  /** Token expiry (seconds since epoch); past it the socket is closed with 4401. */
  exp?: number;
  connectedAt: number;
  /** The socket's last heartbeat (ms); its client heartbeats every 25 s (contract §6). */
  heardAt?: number;
}

/**
 * The attachment changes only with a heartbeat (`heardAt`, through `attach`), and it is read on every frame and, for every socket, whenever the
 * room sets its alarm (each connect and each typing frame): deserialising it each time made opening the n-th socket
 * of a room cost n structured-clone reads. Keyed by the socket, so a woken room (new socket objects) reads each once.
 */
const attachments = new WeakMap<AttachedSocket, SocketAttachment>();

/** The part of a hibernatable WebSocket that holds its attachment. */
export interface AttachedSocket {
  serializeAttachment(value: unknown): void;
  deserializeAttachment(): unknown;
}

export function attach(ws: AttachedSocket, attachment: SocketAttachment): void {
  ws.serializeAttachment(attachment);
  attachments.set(ws, attachment);
}

export function attachmentOf(ws: AttachedSocket): SocketAttachment | undefined {
  const known = attachments.get(ws);
  if (known) return known;
  try {
    const stored = (ws.deserializeAttachment() as SocketAttachment | null) ?? undefined;
    if (stored) attachments.set(ws, stored);
    return stored;
  } catch {
    return undefined;
  }
}

/** Sends a pre-serialised frame; a socket that is already closing is skipped, not an error. */
export function sendRaw(ws: WebSocket, frame: string): void {
  try {
    ws.send(frame);
  } catch {
    // closed or closing
  }
}

/** Close codes 1005/1006 are reserved (cannot be sent); map them to a normal close. */
export function safeClose(ws: WebSocket, code: number, reason: string): void {
  const sendable = code === 1000 || (code >= 3000 && code <= 4999) || (code >= 1001 && code <= 1014 && code !== 1005 && code !== 1006);
  try {
    ws.close(sendable ? code : 1000, reason.slice(0, 120));
  } catch {
    // already closed
  }
}

/** A simple fixed-window frame counter per socket. In memory only: losing it on hibernation (after idle) is harmless. */
export class FrameRateLimiter {
  private windows = new WeakMap<WebSocket, { start: number; count: number }>();
  constructor(private readonly windowMs = 1000) {}

  /** true when the frame is allowed. */
  allow(ws: WebSocket, maxFrames: number, now = Date.now()): boolean {
    let w = this.windows.get(ws);
    if (!w || now - w.start >= this.windowMs) {
      w = { start: now, count: 0 };
      this.windows.set(ws, w);
    }
    w.count++;
    return w.count <= maxFrames;
  }
}

/**
 * A fixed-window counter per key (a user id), in memory like FrameRateLimiter. Windows that have ended are dropped
 * as others open, so a room keeps at most its active members.
 */
export class KeyedRateLimiter {
  private windows = new Map<string, { start: number; count: number }>();
  constructor(private readonly windowMs = 1000) {}

  /** true when the event is allowed. */
  allow(key: string, maxPerWindow: number, now = Date.now()): boolean {
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      for (const [k, old] of this.windows) if (now - old.start >= this.windowMs) this.windows.delete(k);
      w = { start: now, count: 0 };
      this.windows.set(key, w);
    }
    w.count++;
    return w.count <= maxPerWindow;
  }
}
