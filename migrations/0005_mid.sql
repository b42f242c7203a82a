-- 0005_mid.sql -- exactly once across retries: a send may carry a mid, and
-- a send repeating a (room, nick, mid) of the last 24 hours stores nothing
-- and answers with the original's timestamp.
--
-- The 24-hour window and a unique index do not mix in one table: an index
-- cannot say "unique among the rows of the last day". So the mids live in a
-- table of their own keyed by (room, nick, mid), each with its time; a row
-- older than the window is deleted just before the same key is claimed
-- again (so the window is exact whenever the sweep last ran), and the
-- session sweep forgets old ones in bounded passes (so the table stays a
-- day's worth). The claim is an INSERT ... ON CONFLICT DO NOTHING: two
-- transactions claiming one key, on any worker or responder, serialise on
-- the index, and the second finds the first's row once it has committed.

ALTER TABLE messages ADD COLUMN mid text;

CREATE TABLE message_mids (
    room    text        NOT NULL,
    nick    text        NOT NULL,
    mid     text        NOT NULL,
    ts      bigint      NOT NULL,  -- the stored message's timestamp
    sent_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room, nick, mid)
);
CREATE INDEX message_mids_sent_at ON message_mids (sent_at);

-- chat_post with each message's mid (NULL: none).
CREATE FUNCTION chat_post(p_room text, p_nick text[], p_type text[],
                          p_text text[], p_mid text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n    int := cardinality(p_nick);
    head bigint;
    seq  bigint;
BEGIN
    IF n IS NULL OR n = 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO rooms AS r (room, last_ts, last_seq)
    VALUES (p_room, floor(extract(epoch FROM clock_timestamp()) * 1000) + n - 1, n)
    ON CONFLICT (room) DO UPDATE
        SET last_ts = greatest(floor(extract(epoch FROM clock_timestamp()) * 1000),
                               r.last_ts + 1) + n - 1,
            last_seq = r.last_seq + n
    RETURNING r.last_ts, r.last_seq INTO head, seq;

    INSERT INTO messages (room, seq, ts, nick, type, text, mid)
    SELECT p_room, seq - n + m.o, head - n + m.o, m.nick, m.type, m.text, m.mid
    FROM unnest(p_nick, p_type, p_text, p_mid)
         WITH ORDINALITY AS m(nick, type, text, mid, o);

    PERFORM pg_notify('pgchat', p_room || ' ' || head);
    RETURN head;
END
$$;

CREATE OR REPLACE FUNCTION chat_post(p_room text, p_nick text[],
                                     p_type text[], p_text text[])
RETURNS bigint
LANGUAGE sql AS $$
    SELECT chat_post(p_room, p_nick, p_type, p_text,
                     array_fill(NULL::text,
                                ARRAY[coalesce(cardinality(p_nick), 0)]))
$$;

-- Stores a batch of sends as chat_send(text[], text[], text[]) does, each
-- with its mid (NULL: none). Returns the 1-based position and the
-- timestamp of every accepted send: a fresh one's new timestamp, a repeat's
-- original one (a repeat stores nothing). Rooms are taken in order, and
-- within a room the keys are claimed in (nick, mid) order before the room's
-- row is locked, so two batches never wait on each other in a circle.
CREATE FUNCTION chat_send(p_token text[], p_room text[], p_text text[],
                          p_mid text[])
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
               array_agg(i.o::int ORDER BY i.o) AS positions
        FROM input i
        JOIN known k ON k.token_hash = i.hash AND k.room = i.room
        GROUP BY i.room
        ORDER BY i.room
    LOOP
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

-- The session sweep also forgets mids older than the window, at most
-- 10000 a pass.
CREATE OR REPLACE FUNCTION chat_sweep_once(p_idle interval, p_runner text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    n  bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('pgchat maintenance'), 1) THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('lock_timeout', '1s', true);
    n := chat_sweep(p_idle);
    DELETE FROM message_mids
    WHERE (room, nick, mid) IN (
        SELECT room, nick, mid FROM message_mids
        WHERE sent_at < now() - interval '24 hours'
        ORDER BY sent_at LIMIT 10000
        FOR UPDATE SKIP LOCKED);
    PERFORM chat_maintenance_ran('sweep', p_runner, t0, n);
    RETURN n;
END
$$;

-- The page after a cursor as in 0004, each message with its mid.
DROP FUNCTION chat_recv(text, bigint, int);
CREATE FUNCTION chat_recv(p_room text, p_since bigint, p_limit int)
RETURNS TABLE (head bigint, gap boolean, ts bigint, nick text, type text,
               text text, mid text)
LANGUAGE sql STABLE AS $$
    WITH h AS (
        SELECT r.last_ts,
               greatest(
                   coalesce((SELECT m.ts FROM messages m
                             WHERE m.room = p_room AND m.seq = r.last_seq - 1000),
                            -1),
                   coalesce((SELECT e.ts FROM expired e WHERE e.room = p_room),
                            -1)) AS cut
        FROM rooms r WHERE r.room = p_room
    )
    SELECT h.last_ts, h.cut > p_since, m.ts, m.nick, m.type, m.text, m.mid
    FROM h LEFT JOIN LATERAL (
        SELECT ts, nick, type, text, mid FROM messages
        WHERE room = p_room AND ts > greatest(p_since, h.cut)
        ORDER BY ts LIMIT p_limit
    ) m ON true
    ORDER BY m.ts
$$;
