-- 0017_send_hot_path.sql -- the same sends for less of the database's time
-- per batch (issue 21, item 3). What a send stores, answers and notifies
-- is unchanged; only the work on the way is cut. Safe to run twice.
--
-- - chat_token_hash is STABLE, as the convert_to() in its body is: an
--   IMMUTABLE SQL function whose body is not immutable is never inlined,
--   so every token of every batch (and of chat_touch, chat_join, chat_part)
--   ran its own small query through the SQL-function executor. Inlined,
--   it is one sha256() call per token.
-- - chat_send takes a batch without mids (every send of a client that
--   sends none) straight to chat_post: the five statements that claim,
--   expire and look up mids only run when the room's part of the batch has
--   at least one.
-- - chat_post stores the batch and builds its notification in one
--   statement (the rows the INSERT returns), instead of an INSERT, a
--   statement that sums the texts' sizes and a second pass that builds the
--   JSON.

ALTER FUNCTION chat_token_hash(text) STABLE;

CREATE OR REPLACE FUNCTION chat_post(p_room text, p_nick text[], p_type text[],
                                     p_text text[], p_mid text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n       int := cardinality(p_nick);
    prev    bigint;
    head    bigint;
    seq     bigint;
    payload text;
BEGIN
    IF n IS NULL OR n = 0 THEN
        RETURN NULL;
    END IF;
    -- The lock the upsert would take, taken first so that the head before
    -- the batch is read under it (as in 0009).
    SELECT r.last_ts INTO prev FROM rooms r WHERE r.room = p_room FOR UPDATE;
    INSERT INTO rooms AS r (room, last_ts, last_seq)
    VALUES (p_room, floor(extract(epoch FROM clock_timestamp()) * 1000) + n - 1, n)
    ON CONFLICT (room) DO UPDATE
        SET last_ts = greatest(floor(extract(epoch FROM clock_timestamp()) * 1000),
                               r.last_ts + 1) + n - 1,
            last_seq = r.last_seq + n
    RETURNING r.last_ts, r.last_seq INTO head, seq;

    -- The payload of 0009 ("ROOM HEAD PREV JSON"), from the stored rows; a
    -- batch whose texts alone would not fit gets none.
    WITH stored AS (
        INSERT INTO messages (room, seq, ts, nick, type, text, mid)
        SELECT p_room, seq - n + m.o, head - n + m.o, m.nick, m.type, m.text,
               m.mid
        FROM unnest(p_nick, p_type, p_text, p_mid)
             WITH ORDINALITY AS m(nick, type, text, mid, o)
        RETURNING ts, nick, type, text, mid
    )
    SELECT CASE
               WHEN coalesce(current_setting('pgchat.notify_payload', true), '')
                        <> 'off'
                    AND coalesce(sum(octet_length(s.text)), 0) < 8000
               THEN p_room || ' ' || head || ' ' || coalesce(prev, 0) || ' '
                    || json_agg(json_build_array(s.ts, s.nick, s.type, s.text,
                                                 s.mid) ORDER BY s.ts)
           END
    INTO payload
    FROM stored s;
    IF payload IS NULL OR octet_length(payload) > 7999 THEN
        payload := p_room || ' ' || head;
    END IF;
    PERFORM pg_notify('pgchat', payload);
    RETURN head;
END
$$;

-- As in 0005, but a room's part of the batch without a single mid is
-- stored as it is: no key to expire, claim or repeat.
CREATE OR REPLACE FUNCTION chat_send(p_token text[], p_room text[],
                                     p_text text[], p_mid text[])
RETURNS TABLE (pos int, ts bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r       record;
    claimed int[];
    f_nicks text[];
    f_texts text[];
    f_mids  text[];
    f_pos   int[];
    head    bigint;
    n       int;
BEGIN
    FOR r IN
        WITH input AS (
            SELECT i.o, i.room, i.text, i.mid, chat_token_hash(i.token) AS hash
            FROM unnest(p_token, p_room, p_text, p_mid) WITH ORDINALITY
                 AS i(token, room, text, mid, o)
        ), known AS (
            SELECT s.token_hash, s.room, s.nick
            FROM sessions s
            WHERE s.token_hash IN (SELECT hash FROM input)
            FOR KEY SHARE
        )
        SELECT i.room,
               array_agg(k.nick ORDER BY i.o) AS nicks,
               array_agg(i.text ORDER BY i.o) AS texts,
               array_agg(i.mid ORDER BY i.o) AS mids,
               array_agg(i.o::int ORDER BY i.o) AS positions,
               bool_or(i.mid IS NOT NULL) AS any_mid
        FROM input i
        JOIN known k ON k.token_hash = i.hash AND k.room = i.room
        GROUP BY i.room
        ORDER BY i.room
    LOOP
        IF NOT r.any_mid THEN
            n := cardinality(r.positions);
            head := chat_post(r.room, r.nicks,
                              array_fill('msg'::text, ARRAY[n]), r.texts,
                              r.mids);
            RETURN QUERY
                SELECT f.o, head - n + f.k
                FROM unnest(r.positions) WITH ORDINALITY AS f(o, k);
            CONTINUE;
        END IF;

        DELETE FROM message_mids d
        USING unnest(r.nicks, r.mids) AS x(nick, mid)
        WHERE d.room = r.room AND d.nick = x.nick AND d.mid = x.mid
          AND d.sent_at < now() - interval '24 hours';

        -- The first send of each key in the batch claims it, unless an
        -- earlier transaction has (waiting for one still in flight).
        WITH firsts AS (
            SELECT DISTINCT ON (x.nick, x.mid) x.nick, x.mid, x.o
            FROM unnest(r.nicks, r.mids, r.positions) AS x(nick, mid, o)
            WHERE x.mid IS NOT NULL
            ORDER BY x.nick, x.mid, x.o
        ), c AS (
            INSERT INTO message_mids (room, nick, mid, ts)
            SELECT r.room, f.nick, f.mid, 0 FROM firsts f
            ORDER BY f.nick, f.mid
            ON CONFLICT DO NOTHING
            RETURNING nick, mid
        )
        SELECT coalesce(array_agg(f.o), '{}') INTO claimed
        FROM firsts f JOIN c ON c.nick = f.nick AND c.mid = f.mid;

        SELECT array_agg(x.nick ORDER BY x.o), array_agg(x.text ORDER BY x.o),
               array_agg(x.mid ORDER BY x.o), array_agg(x.o ORDER BY x.o)
        INTO f_nicks, f_texts, f_mids, f_pos
        FROM unnest(r.nicks, r.texts, r.mids, r.positions)
             AS x(nick, text, mid, o)
        WHERE x.mid IS NULL OR x.o = ANY (claimed);

        IF f_pos IS NOT NULL THEN
            n := cardinality(f_pos);
            head := chat_post(r.room, f_nicks,
                              array_fill('msg'::text, ARRAY[n]), f_texts,
                              f_mids);
            UPDATE message_mids mm SET ts = head - n + f.k
            FROM unnest(f_nicks, f_mids) WITH ORDINALITY AS f(nick, mid, k)
            WHERE f.mid IS NOT NULL AND mm.room = r.room
              AND mm.nick = f.nick AND mm.mid = f.mid;
            RETURN QUERY
                SELECT f.o, head - n + f.k
                FROM unnest(f_pos) WITH ORDINALITY AS f(o, k);
        END IF;

        RETURN QUERY
            SELECT x.o, mm.ts
            FROM unnest(r.nicks, r.mids, r.positions) AS x(nick, mid, o)
            JOIN message_mids mm
              ON mm.room = r.room AND mm.nick = x.nick AND mm.mid = x.mid
            WHERE x.mid IS NOT NULL AND NOT (x.o = ANY (claimed));
    END LOOP;
END
$$;
