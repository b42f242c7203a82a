-- 0010_comments.sql -- what each table, view and column is, for an
-- operator reading the schema with psql (\dt+, \d+).

COMMENT ON TABLE rooms IS
    'One row per room that has ever been written to: its newest timestamp and message count. Its row lock orders the room''s writers.';
COMMENT ON COLUMN rooms.room IS 'The room''s name (1-64 of letters, digits, _ and -).';
COMMENT ON COLUMN rooms.last_ts IS 'Timestamp of the newest message: the room''s head.';
COMMENT ON COLUMN rooms.last_seq IS 'Number of messages ever stored in the room.';
COMMENT ON COLUMN rooms.created_by IS 'The client address whose join made the room exist (NULL: unknown).';
COMMENT ON COLUMN rooms.created_at IS 'When that join made it exist.';

COMMENT ON TABLE messages IS
    'Every message, join and part, in timestamp order per room. The timestamp is also the readers'' cursor.';
COMMENT ON COLUMN messages.seq IS '1, 2, 3 ... within the room, in timestamp order.';
COMMENT ON COLUMN messages.ts IS 'Milliseconds since the epoch, unique and increasing in commit order within the room.';
COMMENT ON COLUMN messages.type IS 'msg, join or part.';
COMMENT ON COLUMN messages.text IS 'The text of a msg; NULL for join and part.';
COMMENT ON COLUMN messages.mid IS 'The id the client gave the send, if any (exactly once across retries).';

COMMENT ON TABLE sessions IS
    'Who is in which room. A session idle longer than the timeout is ended by the sweep, with a part message.';
COMMENT ON COLUMN sessions.token_hash IS 'SHA-256 of the session id; the id itself is never stored.';
COMMENT ON COLUMN sessions.last_seen IS 'The last /recv, /send or open /events stream of the session.';
COMMENT ON COLUMN sessions.addr IS 'The client address that joined (the per-address cap counts these).';

COMMENT ON TABLE message_mids IS
    'The mids of the last 24 hours, one per (room, nick, mid): a send repeating one stores nothing.';
COMMENT ON COLUMN message_mids.ts IS 'The stored message''s timestamp, answered to a repeat.';

COMMENT ON TABLE expired IS
    'Per room, the newest timestamp retention has deleted up to: a reader behind it is told "gap".';
COMMENT ON TABLE maintenance_runs IS
    'Each maintenance pass (sweep, expire, rooms): which worker ran it, when, and how many rows it took.';
COMMENT ON TABLE schema_migrations IS 'The migrations applied, by file name, and when.';

COMMENT ON VIEW chat_history IS 'Messages with a readable time, for psql.';
COMMENT ON VIEW chat_online IS 'The sessions open now, with their idle seconds, for psql.';
