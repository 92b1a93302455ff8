import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

/**
 * Mirrors migrations/*.sql: tables, columns, and every index and unique constraint under the name the SQL gives it
 * (composite primary keys named `<table>_pkey` as Postgres names them). The SQL is the source of truth and drizzle
 * never generates DDL from this file, so partial-index predicates here are documentation; test/e2e/schema.test.ts
 * checks that tables, index names, uniqueness, methods and indexed columns agree.
 */

const tsvector = customType<{ data: string }>({ dataType: () => "tsvector" });
const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
const seq = (name: string) => bigint(name, { mode: "number" });

export const users = pgTable("users", {
  id: uuid("id").primaryKey(),
  kahaId: text("kaha_id").notNull(),
  createdAt: ts("created_at").notNull().defaultNow(),
  lastSeenAt: ts("last_seen_at"),
  online: boolean("online").notNull().default(false),
}, (t) => [index("users_kaha_id_idx").on(t.kahaId)]);

export const conversations = pgTable("conversations", {
  id: uuid("id").primaryKey(),
  type: text("type", { enum: ["direct", "group", "business"] }).notNull(),
  name: text("name"),
  directKey: text("direct_key"),
  businessId: uuid("business_id"),
  customerId: uuid("customer_id"),
  category: text("category"),
  status: text("status", { enum: ["open", "closed"] }).notNull().default("open"),
  assignedAgentId: uuid("assigned_agent_id"),
  firstResponseAt: ts("first_response_at"),
  closedAt: ts("closed_at"),
  createdBy: uuid("created_by").notNull(),
  createdAt: ts("created_at").notNull().defaultNow(),
  lastActivity: ts("last_activity").notNull().defaultNow(),
  lastSeq: seq("last_seq").notNull().default(0),
  retentionDays: integer("retention_days"),
  legalHold: boolean("legal_hold").notNull().default(false),
  archivedUpToSeq: seq("archived_up_to_seq").notNull().default(0),
  /** Bumped by every change to the view's name, status, members or roles (0017): orders conversation_updated. */
  version: seq("version").notNull().default(0),
}, (t) => [
  // One direct conversation per pair ("low:high" of the two user ids).
  uniqueIndex("conversations_direct_key_uq").on(t.directKey).where(sql`direct_key IS NOT NULL`),
  // One open conversation per business and customer.
  uniqueIndex("conversations_open_business_uq").on(t.businessId, t.customerId).where(sql`type = 'business' AND status = 'open'`),
  index("conversations_business_idx").on(t.businessId, t.status, t.createdAt).where(sql`business_id IS NOT NULL`),
  index("conversations_business_open_agent_idx").on(t.businessId, t.assignedAgentId).where(sql`type = 'business' AND status = 'open'`),
  index("conversations_last_activity_idx").on(t.lastActivity.desc(), t.id.desc()),
]);

export const participants = pgTable(
  "participants",
  {
    conversationId: uuid("conversation_id").notNull(),
    userId: uuid("user_id").notNull(),
    role: text("role", { enum: ["admin", "member", "customer", "agent", "business"] }).notNull(),
    joinedAt: ts("joined_at").notNull().defaultNow(),
    leftAt: ts("left_at"),
    isMuted: boolean("is_muted").notNull().default(false),
    lastReadSeq: seq("last_read_seq").notNull().default(0),
    lastReadAt: ts("last_read_at"),
    lastDeliveredSeq: seq("last_delivered_seq").notNull().default(0),
  },
  (t) => [
    primaryKey({ name: "participants_pkey", columns: [t.conversationId, t.userId] }),
    index("participants_active_user_idx").on(t.userId, t.conversationId).where(sql`left_at IS NULL`),
  ],
);

const messageColumns = {
  id: uuid("id").primaryKey(),
  conversationId: uuid("conversation_id").notNull(),
  seq: seq("seq").notNull(),
  senderId: uuid("sender_id").notNull(),
  clientMessageId: text("client_message_id"),
  type: text("type", { enum: ["text", "image", "file", "system"] }).notNull(),
  content: text("content").notNull(),
  replyToId: uuid("reply_to_id"),
  createdAt: ts("created_at").notNull(),
  editedAt: ts("edited_at"),
  deletedAt: ts("deleted_at"),
};

export const messages = pgTable("messages", {
  ...messageColumns,
  eventSeq: seq("event_seq").notNull(),
  search: tsvector("search").generatedAlwaysAs(sql`to_tsvector('simple', public.chat_unaccent(content))`),
  /** The content without accents, where that differs from it (migration 0015): what substring search matches. */
  searchText: text("search_text").generatedAlwaysAs(sql`NULLIF(public.chat_unaccent(content), content)`),
}, (t) => [
  unique("messages_conversation_seq_uq").on(t.conversationId, t.seq),
  unique("messages_client_id_uq").on(t.conversationId, t.senderId, t.clientMessageId),
  index("messages_event_seq_idx").on(t.conversationId, t.eventSeq),
  // Keyed by conversation first (btree_gin), so one conversation's search does not read every conversation's matches
  // (migration 0012). A small pending list: the insert that overflows it merges it, and that insert is a room's flush
  // (migration 0010). Both match without accents (migration 0015).
  index("messages_conversation_search_idx").using("gin", t.conversationId, t.search).with({ gin_pending_list_limit: 256 }),
  index("messages_conversation_trgm_idx")
    .using("gin", t.conversationId, sql`(coalesce(${t.searchText}, ${t.content})) gin_trgm_ops`)
    .with({ gin_pending_list_limit: 256 }),
  index("messages_created_at_idx").on(t.createdAt),
  index("messages_deleted_content_idx").on(t.deletedAt).where(sql`deleted_at IS NOT NULL AND content <> ''`),
  index("messages_conversation_created_idx").on(t.conversationId, t.createdAt.desc(), t.id.desc()),
]);

export const messageArchive = pgTable("message_archive", {
  ...messageColumns,
  archivedAt: ts("archived_at").notNull().defaultNow(),
}, (t) => [
  unique("message_archive_conversation_seq_uq").on(t.conversationId, t.seq),
  index("message_archive_deleted_content_idx").on(t.deletedAt).where(sql`deleted_at IS NOT NULL AND content <> ''`),
  index("message_archive_client_id_idx").on(t.conversationId, t.senderId, t.clientMessageId).where(sql`client_message_id IS NOT NULL`),
]);

export const auditLog = pgTable("audit_log", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  conversationId: uuid("conversation_id"),
  actorId: uuid("actor_id"),
  action: text("action").notNull(),
  targetId: text("target_id"),
  details: jsonb("details").$type<Record<string, unknown>>().notNull().default({}),
  createdAt: ts("created_at").notNull().defaultNow(),
  prevHash: text("prev_hash"),
  hash: text("hash").notNull(),
  /** Set by writers that may append the same entry twice (a room's outbox): the second append is skipped. */
  entryId: uuid("entry_id"),
}, (t) => [
  index("audit_log_conversation_idx").on(t.conversationId, t.id),
  uniqueIndex("audit_log_entry_id_key").on(t.entryId),
  index("audit_log_unredacted_deletes_idx").on(t.createdAt, t.id).where(sql`action = 'message.deleted' AND NOT (details ? 'redacted')`),
]);

export const realtimeTickets = pgTable("realtime_tickets", {
  ticket: text("ticket").primaryKey(),
  userId: uuid("user_id").notNull(),
  kahaId: text("kaha_id").notNull(),
  role: text("role"),
  expiresAt: ts("expires_at").notNull(),
  tokenExp: bigint("token_exp", { mode: "number" }),
}, (t) => [index("realtime_tickets_expires_idx").on(t.expiresAt)]);

export const businessAdmins = pgTable(
  "business_admins",
  {
    businessId: uuid("business_id").notNull(),
    userId: uuid("user_id").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: "business_admins_pkey", columns: [t.businessId, t.userId] })],
);

export const businessAgents = pgTable(
  "business_agents",
  {
    businessId: uuid("business_id").notNull(),
    userId: uuid("user_id").notNull(),
    skills: text("skills").array().notNull().default(sql`'{}'`),
    maxConcurrentChats: integer("max_concurrent_chats").notNull().default(5),
    isAvailable: boolean("is_available").notNull().default(false),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: "business_agents_pkey", columns: [t.businessId, t.userId] }),
    index("business_agents_user_idx").on(t.userId),
  ],
);

export const businessHours = pgTable("business_hours", {
  businessId: uuid("business_id").primaryKey(),
  timezone: text("timezone").notNull(),
  schedule: jsonb("schedule").$type<Record<string, unknown>>().notNull(),
  holidays: jsonb("holidays").$type<unknown[]>().notNull().default([]),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

export const jobRuns = pgTable("job_runs", {
  job: text("job").primaryKey(),
  startedAt: ts("started_at").notNull(),
  finishedAt: ts("finished_at"),
  durationMs: integer("duration_ms"),
  rows: integer("rows").notNull().default(0),
  details: jsonb("details").$type<Record<string, unknown>>().notNull().default({}),
  cursor: jsonb("cursor"),
  /** The current claim's token (migration 0016): a run records its end only while it still holds its claim. */
  leaseToken: uuid("lease_token"),
});

/** [business] migrations/0004_business_routing.sql (end reasons: 0009): every agent assignment of a business conversation (history, stats). */
export const businessAssignments = pgTable("business_assignments", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  businessId: uuid("business_id").notNull(),
  conversationId: uuid("conversation_id").notNull(),
  agentId: uuid("agent_id").notNull(),
  assignedAt: ts("assigned_at").notNull().defaultNow(),
  assignedBy: uuid("assigned_by"),
  reason: text("reason"),
  endedAt: ts("ended_at"),
  endReason: text("end_reason", { enum: ["closed", "transferred", "agent_removed", "agent_left"] }),
}, (t) => [
  // At most one current agent per conversation.
  uniqueIndex("business_assignments_active_uq").on(t.conversationId).where(sql`ended_at IS NULL`),
  index("business_assignments_business_idx").on(t.businessId, t.assignedAt),
  index("business_assignments_agent_idx").on(t.agentId, t.assignedAt),
]);
