-- 0001_chat.sql -- rooms, messages and sessions, and the functions that
-- change them.
--
-- The timestamp of a message is also the readers' cursor, so it must grow in
-- commit order. Every writer first locks its room's row in "rooms" and takes
-- greatest(now, last + 1) there; the lock is held until commit, so the next
-- writer of that room cannot pick a timestamp before this one is visible.

CREATE TABLE rooms (
    room     text PRIMARY KEY,
    last_ts  bigint NOT NULL,  -- timestamp of the newest message
    last_seq bigint NOT NULL   -- number of messages ever stored in the room
);

CREATE TABLE messages (
    room text   NOT NULL,
    seq  bigint NOT NULL,      -- 1, 2, 3 ... within the room, in ts order
    ts   bigint NOT NULL,      -- milliseconds since the epoch; the cursor
    nick text   NOT NULL,
    type text   NOT NULL CHECK (type IN ('msg', 'join', 'part')),
    text text,
    PRIMARY KEY (room, ts),
    UNIQUE (room, seq),
    CHECK ((type = 'msg') = (text IS NOT NULL))
);

-- Only a SHA-256 of each session token is stored: the table holds nothing
-- that would let a reader act as a user, and looking a token up by its hash
-- tells a timing attacker nothing about the token.
CREATE TABLE sessions (
    token_hash bytea       PRIMARY KEY,
    room       text        NOT NULL,
    nick       text        NOT NULL,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (room, nick)
);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

CREATE FUNCTION chat_token_hash(p_token text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT sha256(convert_to(p_token, 'UTF8'))
$$;

-- Appends messages to one room in array order, all in the caller's
-- transaction, and wakes the listeners once. Returns the newest timestamp.
CREATE FUNCTION chat_post(p_room text, p_nick text[], p_type text[],
                          p_text text[]) RETURNS bigint
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

    INSERT INTO messages (room, seq, ts, nick, type, text)
    SELECT p_room, seq - n + m.o, head - n + m.o, m.nick, m.type, m.text
    FROM unnest(p_nick, p_type, p_text) WITH ORDINALITY AS m(nick, type, text, o);

    -- The payload carries the room and its new head: a listener learns both
    -- without a query. NOTIFY is a wake-up only; readers re-read the table.
    PERFORM pg_notify('pgchat', p_room || ' ' || head);
    RETURN head;
END
$$;

-- Starts a session. A stale session holding the nick (idle longer than
-- p_idle but not yet swept) is ended first, with its part message. Returns
-- false when the nick is in use.
CREATE FUNCTION chat_join(p_token text, p_room text, p_nick text,
                          p_idle interval) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    stale text;
BEGIN
    DELETE FROM sessions
    WHERE room = p_room AND nick = p_nick AND last_seen < now() - p_idle
    RETURNING nick INTO stale;
    IF stale IS NOT NULL THEN
        PERFORM chat_post(p_room, ARRAY[stale], ARRAY['part'], ARRAY[NULL::text]);
    END IF;

    INSERT INTO sessions (token_hash, room, nick)
    VALUES (chat_token_hash(p_token), p_room, p_nick)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM chat_post(p_room, ARRAY[p_nick], ARRAY['join'], ARRAY[NULL::text]);
    RETURN true;
END
$$;

-- Ends a session with its part message. Unknown tokens are not an error.
CREATE FUNCTION chat_part(p_token text, p_room text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    gone text;
BEGIN
    DELETE FROM sessions
    WHERE token_hash = chat_token_hash(p_token) AND room = p_room
    RETURNING nick INTO gone;
    IF gone IS NULL THEN
        RETURN false;
    END IF;
    PERFORM chat_post(p_room, ARRAY[gone], ARRAY['part'], ARRAY[NULL::text]);
    RETURN true;
END
$$;

-- Stores a batch of sends (group commit: one transaction, one wake-up per
-- room). Returns the 1-based positions of the sends that were accepted; the
-- others named no session of that room.
--
-- FOR KEY SHARE keeps the sweeper from ending a session while its message is
-- being stored, yet never blocks another batch or a keep-alive.
CREATE FUNCTION chat_send(p_token text[], p_room text[], p_text text[])
RETURNS SETOF int
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        WITH input AS (
            SELECT i.o, i.room, i.text, chat_token_hash(i.token) AS hash
            FROM unnest(p_token, p_room, p_text) WITH ORDINALITY
                 AS i(token, room, text, o)
        ), known AS (
            SELECT s.token_hash, s.room, s.nick
            FROM sessions s
            WHERE s.token_hash IN (SELECT hash FROM input)
            FOR KEY SHARE
        )
        SELECT i.room,
               array_agg(k.nick ORDER BY i.o) AS nicks,
               array_agg(i.text ORDER BY i.o) AS texts,
               array_agg(i.o ORDER BY i.o) AS positions
        FROM input i
        JOIN known k ON k.token_hash = i.hash AND k.room = i.room
        GROUP BY i.room
        ORDER BY i.room
    LOOP
        PERFORM chat_post(r.room, r.nicks,
                          array_fill('msg'::text, ARRAY[cardinality(r.nicks)]),
                          r.texts);
        RETURN QUERY SELECT unnest(r.positions)::int;
    END LOOP;
END
$$;

-- Marks sessions as seen now. Rows another transaction holds are skipped:
-- they are being touched or swept at this very moment anyway.
CREATE FUNCTION chat_touch(p_token text[]) RETURNS int
LANGUAGE sql AS $$
    WITH locked AS (
        SELECT token_hash FROM sessions
        WHERE token_hash IN (SELECT chat_token_hash(t) FROM unnest(p_token) t)
        ORDER BY token_hash
        FOR NO KEY UPDATE SKIP LOCKED
    ), done AS (
        UPDATE sessions s SET last_seen = now()
        FROM locked WHERE s.token_hash = locked.token_hash
        RETURNING 1
    )
    SELECT count(*)::int FROM done
$$;

-- Ends the sessions idle for longer than p_idle, each with one part message.
-- Any number of workers may sweep at once: a session is deleted by exactly
-- one of them, and its part is stored in that same transaction.
CREATE FUNCTION chat_sweep(p_idle interval) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n int := 0;
BEGIN
    FOR r IN
        WITH gone AS (
            DELETE FROM sessions
            WHERE token_hash IN (
                SELECT token_hash FROM sessions
                WHERE last_seen < now() - p_idle
                ORDER BY token_hash
                FOR UPDATE SKIP LOCKED
                LIMIT 1000)
            RETURNING room, nick, last_seen
        )
        SELECT room, array_agg(nick ORDER BY last_seen, nick) AS nicks
        FROM gone GROUP BY room ORDER BY room
    LOOP
        PERFORM chat_post(r.room, r.nicks,
                          array_fill('part'::text, ARRAY[cardinality(r.nicks)]),
                          array_fill(NULL::text, ARRAY[cardinality(r.nicks)]));
        n := n + cardinality(r.nicks);
    END LOOP;
    RETURN n;
END
$$;

-- The page of messages after a cursor. A cursor more than 1000 messages
-- behind is first moved up to the newest 1000 ("gap"). One row per message,
-- or a single row with a NULL ts when there is none; no row at all when the
-- room has never had a message. head is the room's newest timestamp in the
-- same snapshot.
CREATE FUNCTION chat_recv(p_room text, p_since bigint, p_limit int)
RETURNS TABLE (head bigint, gap boolean, ts bigint, nick text, type text,
               text text)
LANGUAGE sql STABLE AS $$
    WITH h AS (
        SELECT r.last_ts,
               coalesce((SELECT m.ts FROM messages m
                         WHERE m.room = p_room AND m.seq = r.last_seq - 1000),
                        -1) AS cut
        FROM rooms r WHERE r.room = p_room
    )
    SELECT h.last_ts, h.cut > p_since, m.ts, m.nick, m.type, m.text
    FROM h LEFT JOIN LATERAL (
        SELECT ts, nick, type, text FROM messages
        WHERE room = p_room AND ts > greatest(p_since, h.cut)
        ORDER BY ts LIMIT p_limit
    ) m ON true
    ORDER BY m.ts
$$;
