import type { Context } from "hono";
import { unavailable, unwrapRpc, type RpcResult } from "../lib/errors";
import type { Actor } from "../durable-objects/room-api";
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
    const e = err as { retryable?: boolean; overloaded?: boolean; message?: string };
    if (e.retryable || e.overloaded || /Durable Object|reset|exceeded|Network connection lost/i.test(e.message ?? "")) {
      throw unavailable(`${what} temporarily unavailable`, 1);
    }
    throw err;
  }
  return unwrapRpc(result);
}

export const callRoom = <T>(work: () => Promise<RpcResult<T>>): Promise<T> => callObject(work, "Conversation");
