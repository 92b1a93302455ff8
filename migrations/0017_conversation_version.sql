-- A conversation's view (name, status, members and their roles) changes under one counter, bumped in the
-- transaction of each change: conversation_updated pushes travel from different requests and can arrive out of
-- order, and a receiver drops a view older than one it already has (contract additions: Conversation.version).
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0;
