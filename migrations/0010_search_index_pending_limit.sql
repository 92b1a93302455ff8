-- A message insert must not stall for a tenth of a second. Both GIN indexes on messages (full-text and trigram)
-- collect new entries in a pending list and merge it into the index inside whichever insert makes it outgrow
-- gin_pending_list_limit (4 MB by default). That insert is a room's outbox flush, and every message_ack of the
-- conversation waits for it. Single-row inserts into a 2.6-million-row messages table on PostgreSQL 15 (pgbench,
-- 25 s runs, about 40,000 inserts each): with 4 MB the slowest took 121-158 ms, two per run over 100 ms; with
-- 256 kB (a merge of about 30 pages of trigram entries, some 200 messages) the slowest took 25-40 ms, none over
-- 100 ms, at the same throughput; p99.9 rose from 3-7 to 10-12 ms. 64 kB (a merge every ~50 messages) pushed p99
-- from 1-2 ms to 4.5 ms. fastupdate = off would cost three times the index work per message.
ALTER INDEX messages_search_idx SET (gin_pending_list_limit = 256);
ALTER INDEX messages_content_trgm_idx SET (gin_pending_list_limit = 256);
-- Merge what is pending now, so that the first insert after this migration does not pay for up to 4 MB.
SELECT gin_clean_pending_list('messages_search_idx'::regclass), gin_clean_pending_list('messages_content_trgm_idx'::regclass);
