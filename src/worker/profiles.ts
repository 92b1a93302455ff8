import type { Context } from "hono";
import { kahaIdsOf } from "../db/queries/participants";
import { withSenderProfiles, withSenderProfilesJson } from "../profiles/enrich";
import type { SerializedMessage } from "../durable-objects/room-api";
import type { Message } from "../protocol/resources";
import { createProfileProvider, profileOptionsFromConfig, type CachedProfileProvider } from "../profiles/provider";
import type { ProfileRequest, ProfileSet } from "../profiles/types";
import type { AppEnv } from "./env";

/**
 * A REST answer (history, search, lists, participants, `/auth/me`) waits at most this long for the profile service,
 * as a send does (SEND_PROFILE_WAIT_MS); then it goes with stale copies and placeholders named after the kahaId, and
 * the call goes on to fill the cache. Until then a slow service held a page for up to its timeout (5 s), which opens
 * the circuit only once the timeout has been reached, and a service slow below it held every page.
 */
export const PAGE_PROFILE_WAIT_MS = 2000;

/** The Hono adapter: configuration from the request, cache writes and refresh-ahead handed to waitUntil. */
export function profileProvider(c: Context<AppEnv>): CachedProfileProvider {
  let waitUntil: ((work: Promise<unknown>) => void) | undefined;
  try {
    const ctx = c.executionCtx;
    waitUntil = (work) => ctx.waitUntil(work);
  } catch {
    // No execution context (e.g. app.request in a test): background work runs unattended.
  }
  return createProfileProvider({
    ...profileOptionsFromConfig(c.get("config")),
    waitUntil,
    memory: true,
    serviceWaitMs: PAGE_PROFILE_WAIT_MS,
    log: c.get("log"),
  });
}

export function loadProfiles(c: Context<AppEnv>, request: ProfileRequest): Promise<ProfileSet> {
  return profileProvider(c).load(request);
}

/** Messages with `sender`: one profile lookup per response however many messages and senders (profiles/enrich.ts). */
export function withSenders(c: Context<AppEnv>, messages: Message[]): Promise<Message[]> {
  return withSenderProfiles(messages, (request) => loadProfiles(c, request), (ids) => kahaIdsOf(c.get("httpDb")(), ids));
}

/** withSenders for a page the room sent as JSON text: the result is the messages' JSON array. */
export function withSendersJson(c: Context<AppEnv>, messages: SerializedMessage[]): Promise<string> {
  return withSenderProfilesJson(messages, (request) => loadProfiles(c, request), (ids) => kahaIdsOf(c.get("httpDb")(), ids));
}
