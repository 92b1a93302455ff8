import { describe, expect, it } from "vitest";
import { attach, attachmentOf, type SocketAttachment } from "../../src/durable-objects/room/sockets";

/** The two attachment calls of a hibernatable socket, counting the runtime reads (a structured-clone each). */
class FakeSocket {
  reads = 0;
  private stored: unknown = null;
  serializeAttachment(value: unknown): void {
    this.stored = structuredClone(value);
  }
  deserializeAttachment(): unknown {
    this.reads++;
    return structuredClone(this.stored);
  }
}

const identity: SocketAttachment = { userId: "u1", kahaId: "k1", exp: 2_000_000_000, connectedAt: 1 };

describe("room socket attachments", () => {
  it("a socket the room accepted is never read back from the runtime", () => {
    const socket = new FakeSocket();
    attach(socket, identity);
    for (let i = 0; i < 3; i++) expect(attachmentOf(socket)).toEqual(identity);
    expect(socket.reads).toBe(0);
  });

  it("a socket from before a wake is read once, however often the room asks (each alarm scans every socket)", () => {
    const socket = new FakeSocket();
    socket.serializeAttachment(identity);
    for (let i = 0; i < 5; i++) expect(attachmentOf(socket)?.userId).toBe("u1");
    expect(socket.reads).toBe(1);
  });

  it("a socket without an attachment stays unknown, and is asked again", () => {
    const socket = new FakeSocket();
    expect(attachmentOf(socket)).toBeUndefined();
    socket.serializeAttachment(identity);
    expect(attachmentOf(socket)?.kahaId).toBe("k1");
  });
});
