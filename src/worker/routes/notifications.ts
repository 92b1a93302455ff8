import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { unreadSummary } from "../../db/queries/conversations";
import { settleBounded } from "../../lib/bounded";
import type { AppEnv } from "../env";
import { errorResponses, json, secured, securedReader } from "../openapi";
import { actorOf, callRoom, roomStub } from "../rooms";
import { markAllReadResult, unreadCounts } from "../../protocol/responses";

const tags = ["notifications"];
// Rooms are separate objects; a handful at a time keeps one request from fanning out without bound.
const MARK_CONCURRENCY = 6;

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
      responses: {
        200: json("How many conversations were marked", markAllReadResult),
        ...errorResponses(401),
      },
    }),
    async (c) => {
      const unread = (await unreadSummary(c.get("httpDb")(), c.get("user").id)).filter((r) => r.unread > 0);
      const actor = actorOf(c);
      const results = await settleBounded(unread, MARK_CONCURRENCY, ({ conversationId }) =>
        callRoom(() => roomStub(c, conversationId).markRead({ conversationId, actor })),
      );
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed.length > 0) {
        c.get("log").warn("mark-all-read: some rooms failed", { failed: failed.length, of: results.length });
        // Nothing marked at all is an error the client should retry, not a success with 0.
        if (failed.length === results.length) throw failed[0].reason;
      }
      return c.json({ markedConversations: results.length - failed.length }, 200);
    },
  );
