import type { Context } from "hono";
import type { RoomEvent } from "../durable-objects/room-api";
import type { AppEnv } from "./env";
import { callRoom, roomStub } from "./rooms";

/**
 * Tells the conversation's room about a change already committed to Postgres, so it can mirror and broadcast it.
 * The change is already committed (Postgres is the authority), so a failure here is logged rather than turned into
 * an error for a request that did succeed; the room's copy lags until it reloads its participants.
 */
export async function tellRoom(c: Context<AppEnv>, event: RoomEvent): Promise<void> {
  try {
    await callRoom(() => roomStub(c, event.conversationId).notify(event));
  } catch (err) {
    c.var.log.warn("room notify failed", {
      conversationId: event.conversationId,
      kind: event.kind,
      error: err instanceof Error ? err.message.slice(0, 200) : String(err),
    });
  }
}
