-- 0007_search.sql -- search: a room's messages matching a web-style query
-- (words, "quoted phrases", -word), newest first, from a GIN index.
--
-- The index is on an expression, to_tsvector('simple', text), so no column
-- is added and nothing changes for the writers but the index's upkeep. The
-- 'simple' configuration lower-cases and splits, with no stemming and no
-- stop words: a chat is in any language, and a search finds the word typed.
-- A query must use the very same expression for the planner to use the
-- index. Joins and parts have no text, so they are not in it.

CREATE INDEX messages_text_search ON messages
    USING gin (to_tsvector('simple', text));

-- The newest p_limit messages of p_room matching p_query
-- (websearch_to_tsquery: it never fails on what a user types), newest
-- first.
--
-- In two steps, because neither plan alone is good for every word. The
-- planner cannot know how often a word occurs, so alone it walks the
-- (room, ts) index backwards filtering every row; for a rare word in a room
-- of 1M messages that is 1M to_tsvector() calls, seconds. The GIN index
-- alone is fast for a rare word but sorts every match of a common one. So:
-- first the room's newest 1000 messages are filtered in time order (a
-- bounded cost, and where a common word is found at once), and only when
-- they hold fewer than p_limit matches does the GIN index find the older
-- ones, which are sorted (the fence, OFFSET 0, keeps the planner from
-- turning it back into the backward walk). UNION ALL runs its branches in
-- order, so the outer LIMIT never starts the second when the first was
-- enough; the second begins below the first's oldest, so none is twice.
CREATE FUNCTION chat_search(p_room text, p_query text, p_limit int)
RETURNS TABLE (ts bigint, nick text, type text, text text, mid text)
LANGUAGE sql STABLE AS $$
    (SELECT r.ts, r.nick, r.type, r.text, r.mid
     FROM (SELECT m.ts, m.nick, m.type, m.text, m.mid
           FROM messages m
           WHERE m.room = p_room
           ORDER BY m.ts DESC
           LIMIT 1000) r
     WHERE to_tsvector('simple', r.text) @@ websearch_to_tsquery('simple', p_query)
     ORDER BY r.ts DESC
     LIMIT p_limit)
    UNION ALL
    (SELECT o.ts, o.nick, o.type, o.text, o.mid
     FROM (SELECT m.ts, m.nick, m.type, m.text, m.mid
           FROM messages m
           WHERE m.room = p_room
             AND to_tsvector('simple', m.text) @@ websearch_to_tsquery('simple', p_query)
             AND m.ts < (SELECT min(n.ts)
                         FROM (SELECT ts FROM messages
                               WHERE room = p_room
                               ORDER BY ts DESC
                               LIMIT 1000) n)
           OFFSET 0) o
     ORDER BY o.ts DESC
     LIMIT p_limit)
    LIMIT p_limit
$$;
