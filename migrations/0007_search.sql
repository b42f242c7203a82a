-- 0007_search.sql -- search: a room's messages matching a web-style query
-- (words, "quoted phrases", -word), newest first, from a GIN index.
--
-- The index is on an expression, to_tsvector('simple', text), so no column
-- is added and nothing changes for the writers but the index's upkeep. The
-- 'simple' configuration lower-cases and splits, with no stemming and no
-- stop words: a chat is in any language, and a search finds the word typed.
-- The query must use the very same expression for the planner to use the
-- index. Joins and parts have no text, so they are not in it.

CREATE INDEX messages_text_search ON messages
    USING gin (to_tsvector('simple', text));

-- The newest p_limit messages of p_room matching p_query
-- (websearch_to_tsquery: it never fails on what a user types), newest
-- first.
CREATE FUNCTION chat_search(p_room text, p_query text, p_limit int)
RETURNS TABLE (ts bigint, nick text, type text, text text, mid text)
LANGUAGE sql STABLE AS $$
    SELECT m.ts, m.nick, m.type, m.text, m.mid
    FROM messages m
    WHERE m.room = p_room
      AND to_tsvector('simple', m.text) @@ websearch_to_tsquery('simple', p_query)
    ORDER BY m.ts DESC
    LIMIT p_limit
$$;
