-- Business chats (issue [business]): the history of agent assignments. The business's Durable Object
-- (BusinessDesk) holds the live queue and agent load and writes every assignment, transfer and closure through
-- to this table (plus conversations.assigned_agent_id, participants and the audit log) for history and stats.
-- Portable between PostgreSQL 15 and 18.

CREATE TABLE business_assignments (
  id              bigserial PRIMARY KEY,
  business_id     uuid NOT NULL,
  conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  agent_id        uuid NOT NULL,
  assigned_at     timestamptz NOT NULL DEFAULT now(),
  -- Who asked for it: null when the routing chose on its own (new conversation, queue drain).
  assigned_by     uuid,
  reason          text,
  ended_at        timestamptz,
  end_reason      text CHECK (end_reason IN ('closed', 'transferred', 'agent_removed'))
);
-- At most one current agent per conversation, whatever the writer.
CREATE UNIQUE INDEX business_assignments_active_uq ON business_assignments (conversation_id) WHERE ended_at IS NULL;
CREATE INDEX business_assignments_business_idx ON business_assignments (business_id, assigned_at);
CREATE INDEX business_assignments_agent_idx ON business_assignments (agent_id, assigned_at);

-- Open business conversations per agent (load, "my chats") and the unassigned ones (queue rebuild).
CREATE INDEX conversations_business_open_agent_idx ON conversations (business_id, assigned_agent_id)
  WHERE type = 'business' AND status = 'open';
