-- A send's retry check looks its client id up in the archive too: the retention job moves a message with its client
-- id, and a retry of it that the room no longer remembered (ids pruned after 10,000 messages, or a room younger than
-- the message) was stored as a second message. Every new send a room cannot settle from its own ids makes this probe
-- (a miss), so it must be an index lookup, not a walk of the conversation's archive. Partial: most rows have no id.
-- A large production archive: build it first with CREATE INDEX CONCURRENTLY under this name.
CREATE INDEX IF NOT EXISTS message_archive_client_id_idx ON message_archive (conversation_id, sender_id, client_message_id)
  WHERE client_message_id IS NOT NULL;
