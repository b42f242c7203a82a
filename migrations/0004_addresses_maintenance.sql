-- 0004_addresses_maintenance.sql -- sessions per client address, nicks
-- unique whatever their case, maintenance on one runner at a time, and a gap
-- rule that survives retention.

-- --- nicks, whatever their case -------------------------------------------
-- "Admin" and "admin" side by side read as one person. Sessions that
-- already collide are ended, the newest first, each with its part message.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT s.token_hash, s.room, s.nick
        FROM sessions s
        WHERE EXISTS (SELECT 1 FROM sessions o
                      WHERE o.room = s.room AND lower(o.nick) = lower(s.nick)
                        AND (o.joined_at, o.token_hash) < (s.joined_at, s.token_hash))
    LOOP
        DELETE FROM sessions WHERE token_hash = r.token_hash;
        PERFORM chat_post(r.room, ARRAY[r.nick], ARRAY['part'], ARRAY[NULL::text]);
    END LOOP;
END
$$;

ALTER TABLE sessions DROP CONSTRAINT sessions_room_nick_key;
CREATE UNIQUE INDEX sessions_room_lower_nick ON sessions (room, lower(nick));

-- --- sessions per address -------------------------------------------------
-- The client's address as nginx saw it (REMOTE_ADDR); NULL when unknown.
ALTER TABLE sessions ADD COLUMN addr text;
CREATE INDEX sessions_room_addr ON sessions (room, addr);

DROP FUNCTION chat_join(text, text, text, interval, int);

-- Starts a session: 'joined', or 'taken' (the nick, in any case, has a
-- session in the room), 'full' (the room has p_cap sessions) or 'addr_full'
-- (p_addr has p_addr_cap of them). A cap of 0 is no cap. Joins of one room
-- are serialised by an advisory lock, so both caps are exact.
CREATE FUNCTION chat_join(p_token text, p_room text, p_nick text,
                          p_idle interval, p_cap int, p_addr text,
                          p_addr_cap int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    stale text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pgchat join ' || p_room));

    DELETE FROM sessions
    WHERE room = p_room AND lower(nick) = lower(p_nick)
      AND last_seen < now() - p_idle
    RETURNING nick INTO stale;
    IF stale IS NOT NULL THEN
        PERFORM chat_post(p_room, ARRAY[stale], ARRAY['part'], ARRAY[NULL::text]);
    END IF;

    IF EXISTS (SELECT 1 FROM sessions
               WHERE room = p_room AND lower(nick) = lower(p_nick)) THEN
        RETURN 'taken';
    END IF;
    IF p_cap > 0 AND (SELECT count(*) FROM sessions WHERE room = p_room) >= p_cap THEN
        RETURN 'full';
    END IF;
    IF p_addr_cap > 0 AND p_addr IS NOT NULL AND
       (SELECT count(*) FROM sessions
        WHERE room = p_room AND addr = p_addr) >= p_addr_cap THEN
        RETURN 'addr_full';
    END IF;

    INSERT INTO sessions (token_hash, room, nick, addr)
    VALUES (chat_token_hash(p_token), p_room, p_nick, p_addr)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'taken';
    END IF;
    PERFORM chat_post(p_room, ARRAY[p_nick], ARRAY['join'], ARRAY[NULL::text]);
    RETURN 'joined';
END
$$;

-- --- maintenance, one runner at a time ------------------------------------
-- Every pass that ran, with who ran it: an operator sees which responder
-- sweeps, and a test sees that no two passes of a task overlap. Kept for a
-- day.
CREATE TABLE maintenance_runs (
    task     text        NOT NULL CHECK (task IN ('sweep', 'expire')),
    runner   text        NOT NULL,
    started  timestamptz NOT NULL,
    finished timestamptz NOT NULL,
    done     bigint      NOT NULL
);
CREATE INDEX maintenance_runs_finished ON maintenance_runs (finished);

-- Records a pass and forgets those older than a day.
CREATE FUNCTION chat_maintenance_ran(p_task text, p_runner text,
                                     p_started timestamptz, p_done bigint)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO maintenance_runs VALUES (p_task, p_runner, p_started,
                                         clock_timestamp(), p_done);
    DELETE FROM maintenance_runs WHERE finished < now() - interval '1 day';
$$;

-- One pass of the session sweep, or NULL when another runner holds the task
-- right now. The lock is the transaction's: it is gone at commit, crash or
-- disconnection alike. A row lock held by a writer is waited for at most a
-- second; the pass then fails and the next one tries again.
CREATE FUNCTION chat_sweep_once(p_idle interval, p_runner text) RETURNS bigint
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
    PERFORM chat_maintenance_ran('sweep', p_runner, t0, n);
    RETURN n;
END
$$;

-- --- retention that keeps the gap rule ------------------------------------
-- The newest timestamp retention has deleted in each room. Apart from
-- "rooms", so that deleting never waits on a writer's lock of the room.
CREATE TABLE expired (
    room text   PRIMARY KEY,
    ts   bigint NOT NULL
);

-- One pass of retention: deletes at most 10000 messages older than p_days,
-- oldest first within each room (walking the primary key, room by room),
-- and remembers in "expired" how far each room was cut. NULL when another
-- runner holds the task.
CREATE FUNCTION chat_expire_once(p_days int, p_runner text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    t0     timestamptz := clock_timestamp();
    cutoff bigint := floor(extract(epoch FROM now() - make_interval(days => p_days)) * 1000);
    budget bigint := 10000;
    n      bigint := 0;
    k      bigint;
    top    bigint;
    r      record;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('pgchat maintenance'), 2) THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('lock_timeout', '1s', true);
    FOR r IN SELECT room FROM rooms ORDER BY room LOOP
        EXIT WHEN budget <= 0;
        WITH gone AS (
            DELETE FROM messages m
            WHERE m.room = r.room
              AND m.ts IN (SELECT ts FROM messages
                           WHERE room = r.room AND ts < cutoff
                           ORDER BY ts LIMIT budget)
            RETURNING m.ts
        )
        SELECT count(*), max(ts) INTO k, top FROM gone;
        IF k > 0 THEN
            INSERT INTO expired AS e (room, ts) VALUES (r.room, top)
            ON CONFLICT (room) DO UPDATE SET ts = greatest(e.ts, excluded.ts);
            n := n + k;
            budget := budget - k;
        END IF;
    END LOOP;
    PERFORM chat_maintenance_ran('expire', p_runner, t0, n);
    RETURN n;
END
$$;

-- The page of messages after a cursor, as in 0001, with one more rule: a
-- cursor before what retention deleted is behind too, so "gap" is set and
-- the page starts after the cut. (Without it, once the message 1000 behind
-- the head was deleted, no cursor was ever found behind.)
CREATE OR REPLACE FUNCTION chat_recv(p_room text, p_since bigint, p_limit int)
RETURNS TABLE (head bigint, gap boolean, ts bigint, nick text, type text,
               text text)
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
    SELECT h.last_ts, h.cut > p_since, m.ts, m.nick, m.type, m.text
    FROM h LEFT JOIN LATERAL (
        SELECT ts, nick, type, text FROM messages
        WHERE room = p_room AND ts > greatest(p_since, h.cut)
        ORDER BY ts LIMIT p_limit
    ) m ON true
    ORDER BY m.ts
$$;
