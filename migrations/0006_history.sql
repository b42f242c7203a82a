-- 0006_history.sql -- scrollback: a page of a room's messages before a
-- cursor, newest first off the primary key (room, ts), so that a page
-- costs the same at any depth.

-- The newest p_limit messages of p_room with ts < p_before, plus one more
-- row when older ones exist (the caller drops it and says "more"); newest
-- first.
CREATE FUNCTION chat_before(p_room text, p_before bigint, p_limit int)
RETURNS TABLE (ts bigint, nick text, type text, text text, mid text)
LANGUAGE sql STABLE AS $$
    SELECT m.ts, m.nick, m.type, m.text, m.mid
    FROM messages m
    WHERE m.room = p_room AND m.ts < p_before
    ORDER BY m.ts DESC
    LIMIT p_limit + 1
$$;
