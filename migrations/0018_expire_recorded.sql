-- 0018_expire_recorded.sql -- retention only through chat_expire_once.
-- 0003's chat_expire(days) deletes old messages without recording the cut
-- in "expired" (0004), so a reader behind the cut would be handed the
-- messages after it with no gap: a silent skip. Nothing in pgchat calls
-- it; an operator who did from psql would get exactly that. It goes, and
-- chat_expire_once(days, runner) is the one way. Safe to run twice.

DROP FUNCTION IF EXISTS chat_expire(int);
