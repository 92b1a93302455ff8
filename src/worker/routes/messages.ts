import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import type { Context, TypedResponse } from "hono";
import { badRequest, notFound } from "../../lib/errors";
import { searchMessages } from "../../db/queries/search";
import { LIMITS, messageSchema, type Message } from "../../protocol/resources";
import { sendMessageBody } from "../../protocol/requests";
import { historyPage, searchResult } from "../../protocol/responses";
import { errorResponses, json, jsonBody, noBody, secured, securedMember, securedReader } from "../openapi";
import { decodeCursor, encodeCursor, intParam, isUuidParam, limitParam, uuidPath } from "../params";
import { actorOf, callRoom, roomStub } from "../rooms";
import { withSenders, withSendersJson } from "../profiles";
import type { AppEnv } from "../env";

const tags = ["messages"];

const conversationParam = z.object({ id: uuidPath("Conversation") });
const messageParams = z.object({ id: uuidPath("Conversation"), messageId: uuidPath("Message") });

const editBody = z.strictObject({ content: z.string().max(LIMITS.contentMaxRawUnits) });

const historyQuery = z.object({
  limit: limitParam(50),
  before: intParam(1),
  after: intParam(0),
  page: intParam(1),
});
const searchQuery = z.object({
  // Bounds checked by parseSearch (after trimming, in characters): stated here for clients that read the document.
  q: z.string().openapi({ description: "Words or a fragment; any text is safe", minLength: 1, maxLength: LIMITS.searchQueryMax }),
  limit: limitParam(20),
  cursor: z.string().max(500).optional(),
});
// Year 0 is valid ISO 8601 but not a Postgres date.
const searchCursor = z.object({
  createdAt: z.iso.datetime().refine((s) => !s.startsWith("0000")),
  conversationId: z.string().uuid(),
  seq: z.number().int().positive(),
});
const conversationSearchCursor = z.object({ beforeSeq: z.number().int().positive() });

/** A history page around its messages' JSON array text (historyPage's shape: `messages` first, then the rest). */
function pageResponse(
  c: Context<AppEnv>,
  messagesJson: string,
  rest: Omit<z.infer<typeof historyPage>, "messages">,
): TypedResponse<z.infer<typeof historyPage>, 200, "json"> {
  const text = `{"messages":${messagesJson},${JSON.stringify(rest).slice(1)}`;
  // The text is already a historyPage; c.json would serialize the messages a second time.
  return c.body(text, 200, { "content-type": "application/json" }) as unknown as TypedResponse<z.infer<typeof historyPage>, 200, "json">;
}

function requireIds(...ids: string[]): void {
  for (const id of ids) if (!isUuidParam(id)) throw notFound(ids.length > 1 && id === ids[1] ? "Message" : "Conversation");
}

function parseSearch(q: string): string {
  // Postgres text cannot hold NUL. Composed (NFC) as stored content is: "e" + U+0301 typed found nothing stored as "é".
  const cleaned = q.replace(/\u0000/g, "").normalize("NFC").trim();
  if (cleaned.length === 0) throw badRequest("q: must not be empty");
  // Characters as users count them (code points), as for message content.
  if ([...cleaned].length > LIMITS.searchQueryMax) throw badRequest(`q: must be at most ${LIMITS.searchQueryMax} characters`);
  return cleaned;
}

/** Validates the query and its cursor (shape given by `cursorSchema`), runs `find`, adds senders and the next cursor. */
async function runSearch<C>(
  c: Context<AppEnv>,
  query: z.output<typeof searchQuery>,
  cursorSchema: z.ZodType<C>,
  find: (q: string, cursor: C | undefined, limit: number) => Promise<{ messages: Message[]; next?: C }>,
) {
  const q = parseSearch(query.q);
  const cursor = query.cursor ? decodeCursor(query.cursor, cursorSchema) : undefined;
  if (query.cursor && !cursor) throw badRequest("cursor: invalid");
  const result = await find(q, cursor, query.limit);
  return { messages: await withSenders(c, result.messages), nextCursor: result.next ? encodeCursor(result.next) : null };
}

/** Messages of one conversation: every write goes through the conversation's Durable Object. */
export const messages = new OpenAPIHono<AppEnv>()
  .openapi(
    createRoute({
      method: "post",
      path: "/{id}/messages",
      tags,
      summary: "Send a message (idempotent by clientMessageId)",
      ...securedMember,
      request: { params: conversationParam, ...jsonBody(sendMessageBody) },
      responses: {
        201: json("Stored; status 'pending' when Postgres has not confirmed it within the deadline", messageSchema),
        200: json("A retry with the same clientMessageId: the original message", messageSchema),
        // 409: the clientMessageId was used for other content, or the (business) conversation is closed.
        ...errorResponses(400, 401, 404, 409, 413, 429),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      requireIds(id);
      const body = c.req.valid("json");
      const result = await callRoom(() => roomStub(c, id).send({ conversationId: id, actor: actorOf(c), ...body }));
      return c.json(result.message, result.created ? 201 : 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}/messages",
      tags,
      summary: "History: keyset pages by seq (before/after), ascending within a page; newest page by default",
      ...securedMember,
      request: { params: conversationParam, query: historyQuery },
      responses: {
        200: json("A page of messages", historyPage),
        ...errorResponses(400, 401, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      requireIds(id);
      const q = c.req.valid("query");
      if (q.before !== undefined && q.after !== undefined) throw badRequest("use either before or after, not both");
      // As the conversation list does with cursor and page: two ways of paging at once is a mistake, not a choice.
      if (q.page !== undefined && (q.before !== undefined || q.after !== undefined)) throw badRequest("use either page or before/after, not both");
      const room = roomStub(c, id);
      const actor = actorOf(c);
      if (q.page !== undefined) {
        // Page n counts back from the newest message; seq is dense, so it maps to a seq range (no OFFSET scan).
        // History holds the seqs after the archive mark: pages end there, and `total` counts what they can show.
        const head = await callRoom(() => room.history({ conversationId: id, actor, limit: 1 }));
        const oldest = head.archivedUpToSeq + 1;
        const top = head.lastSeq - (q.page - 1) * q.limit;
        const page =
          top < oldest
            ? { messages: [], hasMore: false }
            : await callRoom(() => room.history({ conversationId: id, actor, before: top + 1, limit: q.limit }));
        const total = head.lastSeq - head.archivedUpToSeq;
        return pageResponse(c, await withSendersJson(c, page.messages), { hasMore: top - q.limit >= oldest, page: q.page, limit: q.limit, total });
      }
      const page = await callRoom(() => room.history({ conversationId: id, actor, before: q.before, after: q.after, limit: q.limit }));
      return pageResponse(c, await withSendersJson(c, page.messages), { hasMore: page.hasMore });
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}/messages/search",
      tags,
      summary: "Full-text and substring search in one conversation, newest first",
      ...securedMember,
      request: { params: conversationParam, query: searchQuery },
      responses: { 200: json("Matching messages", searchResult), ...errorResponses(400, 401, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      requireIds(id);
      const actor = actorOf(c);
      const found = await runSearch(c, c.req.valid("query"), conversationSearchCursor, async (q, cursor, limit) => {
        const page = await callRoom(() => roomStub(c, id).search({ conversationId: id, actor, q, beforeSeq: cursor?.beforeSeq, limit }));
        return { messages: page.messages, next: page.nextBeforeSeq ? { beforeSeq: page.nextBeforeSeq } : undefined };
      });
      return c.json(found, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}/messages/{messageId}",
      tags,
      summary: "One message",
      ...securedMember,
      request: { params: messageParams },
      responses: { 200: json("The message (a tombstone when deleted)", messageSchema), ...errorResponses(401, 404) },
    }),
    async (c) => {
      const { id, messageId } = c.req.valid("param");
      requireIds(id, messageId);
      const message = await callRoom(() => roomStub(c, id).getMessage({ conversationId: id, actor: actorOf(c), messageId }));
      const [enriched] = await withSenders(c, [message]);
      return c.json(enriched, 200);
    },
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/{id}/messages/{messageId}",
      tags,
      summary: "Edit a message (sender only; the previous content goes to the audit log)",
      ...securedMember,
      request: { params: messageParams, ...jsonBody(editBody) },
      responses: {
        200: json("The edited message; as it was (not marked edited, nothing audited) when the text is the one it has", messageSchema),
        ...errorResponses(400, 401, 403, 404, 409, 413, 429),
      },
    }),
    async (c) => {
      const { id, messageId } = c.req.valid("param");
      requireIds(id, messageId);
      const { content } = c.req.valid("json");
      const message = await callRoom(() => roomStub(c, id).edit({ conversationId: id, actor: actorOf(c), messageId, content }));
      return c.json(message, 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/{id}/messages/{messageId}",
      tags,
      summary: "Soft-delete a message (sender or group admin; audited)",
      ...securedMember,
      // No options: a body with any field (a "delete for me" flag, say) is a 400, never a delete for everyone.
      request: { params: messageParams, ...noBody() },
      responses: { 204: { description: "Deleted (a tombstone keeps its id and seq)" }, ...errorResponses(400, 401, 403, 404, 429) },
    }),
    async (c) => {
      const { id, messageId } = c.req.valid("param");
      requireIds(id, messageId);
      await callRoom(() => roomStub(c, id).remove({ conversationId: id, actor: actorOf(c), messageId }));
      return c.body(null, 204);
    },
  );

/** Search across every conversation the caller is in. */
export const messageSearch = new OpenAPIHono<AppEnv>().openapi(
  createRoute({
    method: "get",
    path: "/search",
    tags,
    summary: "Full-text and substring search across the caller's conversations, newest first",
    ...securedReader,
    request: { query: searchQuery },
    responses: { 200: json("Matching messages", searchResult), ...errorResponses(400, 401) },
  }),
  async (c) =>
    c.json(await runSearch(c, c.req.valid("query"), searchCursor, (q, cursor, limit) => searchMessages(c.get("httpDb")(), { userId: c.get("user").id, q, cursor, limit })), 200),
);
