import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  customType,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";

/** Mirrors migrations/*.sql (the SQL is the source of truth; test/e2e/schema.test.ts checks they agree). */

const tsvector = customType<{ data: string }>({ dataType: () => "tsvector" });
const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
const seq = (name: string) => bigint(name, { mode: "number" });

export const users = pgTable("users", {
  id: uuid("id").primaryKey(),
  kahaId: text("kaha_id").notNull(),
  createdAt: ts("created_at").notNull().defaultNow(),
  lastSeenAt: ts("last_seen_at"),
  online: boolean("online").notNull().default(false),
});

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
});

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
  (t) => [primaryKey({ columns: [t.conversationId, t.userId] })],
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
  search: tsvector("search").generatedAlwaysAs(sql`to_tsvector('simple', content)`),
});

export const messageArchive = pgTable("message_archive", {
  ...messageColumns,
  archivedAt: ts("archived_at").notNull().defaultNow(),
});

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
});

export const realtimeTickets = pgTable("realtime_tickets", {
  ticket: text("ticket").primaryKey(),
  userId: uuid("user_id").notNull(),
  kahaId: text("kaha_id").notNull(),
  role: text("role"),
  expiresAt: ts("expires_at").notNull(),
  tokenExp: bigint("token_exp", { mode: "number" }),
});

export const businessAdmins = pgTable(
  "business_admins",
  {
    businessId: uuid("business_id").notNull(),
    userId: uuid("user_id").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.businessId, t.userId] })],
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
  (t) => [primaryKey({ columns: [t.businessId, t.userId] })],
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
});
