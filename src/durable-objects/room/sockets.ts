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

/**
 * A fixed-window counter per key: a socket (its frames a second) or a user id (a room's typing starts). In memory
 * only: losing it on hibernation (after idle) is harmless. Windows that have ended are dropped as others open, at
 * most once a window (the per-socket counter is shared by every room in the isolate), so a closed socket's entry
 * goes with its window and the map keeps only keys active lately.
 */
export class WindowRateLimiter<K> {
  private windows = new Map<K, { start: number; count: number }>();
  private prunedAt = -Infinity;
  constructor(private readonly windowMs = 1000) {}

  /** true when the event is allowed. */
  allow(key: K, maxPerWindow: number, now = Date.now()): boolean {
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      if (now - this.prunedAt >= this.windowMs) {
        for (const [k, old] of this.windows) if (now - old.start >= this.windowMs) this.windows.delete(k);
        this.prunedAt = now;
      }
      w = { start: now, count: 0 };
      this.windows.set(key, w);
    }
    w.count++;
    return w.count <= maxPerWindow;
  }
}
