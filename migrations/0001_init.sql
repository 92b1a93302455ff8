-- Initial schema: every table the contract needs. Portable between PostgreSQL 15 (Debian) and 18 (PGlite).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
  id          uuid PRIMARY KEY,
  kaha_id     text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz
);
CREATE INDEX users_kaha_id_idx ON users (kaha_id);

CREATE TABLE conversations (
  id                 uuid PRIMARY KEY,
  type               text NOT NULL CHECK (type IN ('direct', 'group', 'business')),
  name               text,
  -- "low:high" of the two user ids: the unique index makes one direct conversation per pair a database fact.
  direct_key         text,
  business_id        uuid,
  customer_id        uuid,
  category           text,
  status             text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
  assigned_agent_id  uuid,
  first_response_at  timestamptz,
  closed_at          timestamptz,
  created_by         uuid NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  last_activity      timestamptz NOT NULL DEFAULT now(),
  last_seq           bigint NOT NULL DEFAULT 0,
  retention_days     integer,
  legal_hold         boolean NOT NULL DEFAULT false,
  archived_up_to_seq bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX conversations_direct_key_uq ON conversations (direct_key) WHERE direct_key IS NOT NULL;
CREATE UNIQUE INDEX conversations_open_business_uq ON conversations (business_id, customer_id)
  WHERE type = 'business' AND status = 'open';
CREATE INDEX conversations_business_idx ON conversations (business_id, status, created_at) WHERE business_id IS NOT NULL;

CREATE TABLE participants (
  conversation_id    uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  user_id            uuid NOT NULL REFERENCES users (id),
  role               text NOT NULL CHECK (role IN ('admin', 'member', 'customer', 'agent', 'business')),
  joined_at          timestamptz NOT NULL DEFAULT now(),
  left_at            timestamptz,
  is_muted           boolean NOT NULL DEFAULT false,
  last_read_seq      bigint NOT NULL DEFAULT 0,
  last_read_at       timestamptz,
  last_delivered_seq bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (conversation_id, user_id)
);
-- The conversation list starts from the caller's active memberships.
CREATE INDEX participants_active_user_idx ON participants (user_id, conversation_id) WHERE left_at IS NULL;

CREATE TABLE messages (
  id                uuid PRIMARY KEY,
  conversation_id   uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  seq               bigint NOT NULL,
  sender_id         uuid NOT NULL,
  client_message_id text,
  type              text NOT NULL CHECK (type IN ('text', 'image', 'file', 'system')),
  content           text NOT NULL,
  reply_to_id       uuid,
  created_at        timestamptz NOT NULL,
  edited_at         timestamptz,
  deleted_at        timestamptz,
  -- The conversation's last seq when this row last changed: resume replays edits/deletes stamped at or after afterSeq.
  event_seq         bigint NOT NULL,
  search            tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED,
  CONSTRAINT messages_conversation_seq_uq UNIQUE (conversation_id, seq),
  CONSTRAINT messages_client_id_uq UNIQUE (conversation_id, sender_id, client_message_id)
);
CREATE INDEX messages_event_seq_idx ON messages (conversation_id, event_seq);
CREATE INDEX messages_search_idx ON messages USING gin (search);
CREATE INDEX messages_content_trgm_idx ON messages USING gin (content gin_trgm_ops);
CREATE INDEX messages_created_at_idx ON messages (created_at);

CREATE TABLE message_archive (
  id                uuid PRIMARY KEY,
  conversation_id   uuid NOT NULL,
  seq               bigint NOT NULL,
  sender_id         uuid NOT NULL,
  client_message_id text,
  type              text NOT NULL,
  content           text NOT NULL,
  reply_to_id       uuid,
  created_at        timestamptz NOT NULL,
  edited_at         timestamptz,
  deleted_at        timestamptz,
  archived_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT message_archive_conversation_seq_uq UNIQUE (conversation_id, seq)
);

CREATE TABLE audit_log (
  id              bigserial PRIMARY KEY,
  conversation_id uuid,
  actor_id        uuid,
  action          text NOT NULL,
  target_id       text,
  details         jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at      timestamptz NOT NULL DEFAULT now(),
  prev_hash       text,
  hash            text NOT NULL
);
CREATE INDEX audit_log_conversation_idx ON audit_log (conversation_id, id);

CREATE TABLE realtime_tickets (
  ticket     text PRIMARY KEY,
  user_id    uuid NOT NULL,
  kaha_id    text NOT NULL,
  role       text,
  expires_at timestamptz NOT NULL
);
CREATE INDEX realtime_tickets_expires_idx ON realtime_tickets (expires_at);

CREATE TABLE business_admins (
  business_id uuid NOT NULL,
  user_id     uuid NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (business_id, user_id)
);

CREATE TABLE business_agents (
  business_id          uuid NOT NULL,
  user_id              uuid NOT NULL,
  skills               text[] NOT NULL DEFAULT '{}',
  max_concurrent_chats integer NOT NULL DEFAULT 5 CHECK (max_concurrent_chats BETWEEN 1 AND 100),
  is_available         boolean NOT NULL DEFAULT false,
  created_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (business_id, user_id)
);
CREATE INDEX business_agents_user_idx ON business_agents (user_id);

CREATE TABLE business_hours (
  business_id uuid PRIMARY KEY,
  timezone    text NOT NULL,
  schedule    jsonb NOT NULL,
  holidays    jsonb NOT NULL DEFAULT '[]'::jsonb,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE job_runs (
  job         text PRIMARY KEY,
  started_at  timestamptz NOT NULL,
  finished_at timestamptz,
  duration_ms integer,
  rows        integer NOT NULL DEFAULT 0,
  details     jsonb NOT NULL DEFAULT '{}'::jsonb,
  cursor      jsonb
);
