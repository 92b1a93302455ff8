import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { unreadSummary } from "../../db/queries/conversations";
import { settleBounded } from "../../lib/bounded";
import type { AppEnv } from "../env";
import { errorResponses, json, noBody, secured, securedReader } from "../openapi";
import { actorOf, callRoom, roomStub } from "../rooms";
import { markAllReadResult, unreadCounts } from "../../protocol/responses";

const tags = ["notifications"];
// Rooms are separate objects; a handful at a time keeps one request from fanning out without bound.
const MARK_CONCURRENCY = 6;
/**
 * mark-all-read also asks the rooms of this many of the most recently active conversations Postgres counts nothing
 * unread in: a room shows a message on its sockets before its flush commits it, so Postgres's count can miss what
 * the user has just been shown. Each ask is cheap (a room that never loaded is not loaded for it), but not free.
 */
const QUIET_ROOMS_ASKED = 100;

export const notifications = new OpenAPIHono<AppEnv>()
  .openapi(
    createRoute({
      method: "get",
      path: "/unread-counts",
      tags,
      summary: "Unread counts of all the caller's conversations; muted ones are counted and listed in `muted`",
      ...securedReader,
      responses: { 200: json("Unread counts", unreadCounts), ...errorResponses(401) },
    }),
    async (c) => {
      const rows = await unreadSummary(c.get("httpDb")(), c.get("user").id);
      const unreadCounts: Record<string, number> = {};
      for (const r of rows) unreadCounts[r.conversationId] = r.unread;
      return c.json(
        {
          userId: c.get("user").id,
          unreadCounts,
          totalUnread: rows.reduce((sum, r) => sum + r.unread, 0),
          muted: rows.filter((r) => r.isMuted).map((r) => r.conversationId),
        },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/mark-all-read",
      tags,
      summary: "Mark every conversation with unread messages as read up to its latest message",
      ...secured,
      // No options: a body with any field (a client's `conversationIds`, say) is a 400, not "mark everything".
      request: noBody(),
      responses: {
        200: json("How many conversations were marked", markAllReadResult),
        ...errorResponses(400, 401),
      },
    }),
    async (c) => {
      // What the user has been sent by now: the rooms are asked a few at a time, and a message sent before a room's
      // turn is one the user never saw.
      const sentBy = new Date().toISOString();
      const summary = await unreadSummary(c.get("httpDb")(), c.get("user").id);
      const unread = summary.filter((r) => r.unread > 0);
      const quiet = summary
        .filter((r) => r.unread === 0)
        .sort((x, y) => y.lastActivity.getTime() - x.lastActivity.getTime())
        .slice(0, QUIET_ROOMS_ASKED);
      const actor = actorOf(c);
      const asks = [...unread.map((r) => ({ id: r.conversationId, quiet: false })), ...quiet.map((r) => ({ id: r.conversationId, quiet: true }))];
      const results = await settleBounded(asks, MARK_CONCURRENCY, async ({ id, quiet }) => {
        const room = roomStub(c, id);
        if (!quiet) return (await callRoom(() => room.markRead({ conversationId: id, actor, sentBy }))) !== undefined;
        return (await callRoom(() => room.markReadIfUnread({ conversationId: id, actor, sentBy }))) !== undefined;
      });
      const rejected = (r: PromiseSettledResult<boolean>): r is PromiseRejectedResult => r.status === "rejected";
      const failed = results.filter(rejected);
      const failedUnread = results.slice(0, unread.length).filter(rejected);
      if (failed.length > 0) {
        c.get("log").warn("mark-all-read: some rooms failed", { failed: failed.length, of: results.length });
        // None of what Postgres counts unread marked is an error the client should retry, not a success with 0.
        if (unread.length > 0 && failedUnread.length === unread.length) throw failedUnread[0].reason;
      }
      const marked = results.filter((r) => r.status === "fulfilled" && r.value).length;
      return c.json({ markedConversations: marked }, 200);
    },
  );
