import type { Context } from "hono";
import { errorReason, type HttpError, unavailable, unwrapRpc, type RpcResult } from "../lib/errors";
import type { Actor, RoomMarks } from "../durable-objects/room-api";
import type { AppEnv } from "./env";

/** The conversation's Durable Object: one per conversation id, named by its canonical (lower-case) spelling. */
export function roomStub(c: Context<AppEnv>, conversationId: string) {
  const ns = c.env.CONVERSATION_ROOM;
  return ns.get(ns.idFromName(conversationId.toLowerCase()));
}

export function actorOf(c: Context<AppEnv>): Actor {
  const u = c.get("user");
  return { id: u.id, kahaId: u.kahaId, ...(u.role ? { role: u.role } : {}) };
}

/**
 * Calls a Durable Object over RPC: an expected failure becomes its HttpError, a broken or overloaded object a 503
 * naming `what` (rooms, business desks).
 */
export async function callObject<T>(work: () => Promise<RpcResult<T>>, what: string): Promise<T> {
  let result: RpcResult<T>;
  try {
    result = await work();
  } catch (err) {
    throw objectUnavailable(err, what) ?? err;
  }
  return unwrapRpc(result);
}

/**
 * The retryable 503 for what the runtime throws at a caller while a Durable Object restarts (a deploy), sheds load or
 * loses its connection; undefined for anything else. RPC calls and socket upgrades (a plain fetch) alike.
 */
export function objectUnavailable(err: unknown, what: string): HttpError | undefined {
  const e = err as { retryable?: boolean; overloaded?: boolean; message?: string } | null;
  if (e?.retryable || e?.overloaded || /Durable Object|reset|exceeded|Network connection lost/i.test(e?.message ?? "")) {
    return unavailable(`${what} temporarily unavailable`, 1);
  }
  return undefined;
}

export const callRoom = <T>(work: () => Promise<RpcResult<T>>): Promise<T> => callObject(work, "Conversation");

/**
 * The read and delivered marks the room holds, by member. A mark the room acknowledged (a socket's receipt, a PUT
 * whose commit missed its deadline) is in Postgres only after its flush: answered from Postgres alone, an app that
 * read the marks right after the receipt frames saw them go backwards. A room that never loaded is not loaded for
 * this; one that is down leaves the Postgres answer as it is (a read endpoint does not fail for a copy it can do
 * without). Ask after Postgres was read: the room's copy then has every mark that read could have missed.
 */
export async function heldMarks(c: Context<AppEnv>, conversationId: string): Promise<Map<string, RoomMarks>> {
  try {
    const marks = await callRoom(() => roomStub(c, conversationId).readMarks(conversationId));
    return new Map((marks ?? []).map((m) => [m.userId, m]));
  } catch (err) {
    c.get("log").warn("the room's marks are unavailable", { conversationId, error: errorReason(err).slice(0, 200) });
    return new Map();
  }
}
