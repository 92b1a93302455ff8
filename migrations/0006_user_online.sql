-- Whether a user has a device on their user socket (presence online or away), written by the user's session on
-- every presence transition before it tells the user's rooms. A room reads it for its members when it first loads
-- (and on its periodic member refresh), so it sends new-message notifications only to members who can receive
-- them live: an offline member's session is not woken per message (their badges are recomputed from Postgres when
-- a device connects). Users that exist when this runs are unknown, so they start as reachable (true, the safe side:
-- notified until their next presence change); users created later start offline until a device connects.
-- Portable between PostgreSQL 15 and 18.
ALTER TABLE users ADD COLUMN IF NOT EXISTS online boolean NOT NULL DEFAULT true;
ALTER TABLE users ALTER COLUMN online SET DEFAULT false;
