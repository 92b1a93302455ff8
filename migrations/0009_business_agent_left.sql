-- Business chats: an assignment also ends when its agent leaves the conversation themselves
-- (DELETE /conversations/:id/participants/<own id>); the conversation goes back to the front of the queue.
-- Portable between PostgreSQL 15 and 18.
ALTER TABLE business_assignments DROP CONSTRAINT IF EXISTS business_assignments_end_reason_check;
ALTER TABLE business_assignments ADD CONSTRAINT business_assignments_end_reason_check
  CHECK (end_reason IN ('closed', 'transferred', 'agent_removed', 'agent_left'));
