-- 0013_bans.sql -- a moderator bans a user of the site's login from a room
-- (PGCHAT_AUTH=request, X-Pgchat-Role: moderator): the user's sessions in
-- the room end at once, with one part message, and the user cannot join
-- it again until unbanned. Reading stays as the site's room list has it.
-- Safe to run twice.

CREATE TABLE IF NOT EXISTS bans (
    room      text        NOT NULL,
    login     text        NOT NULL,
    banned_by text        NOT NULL,
    banned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room, login)
);
COMMENT ON TABLE bans IS
    'The logins a moderator has banned from a room: chat_join refuses them (''banned'').';

-- 0011's chat_join, refusing a banned login ('banned') under the room's
-- lock, which chat_ban takes too: a join and a ban of one room never
-- interleave.
CREATE OR REPLACE FUNCTION chat_join(p_token text, p_room text, p_nick text,
                                     p_idle interval, p_cap int, p_addr text,
                                     p_addr_cap int, p_rooms_per_minute int,
                                     p_login text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    stale text[];
    fresh boolean;
    again boolean;
    maker inet;
    wait  int;
    v_nick text := coalesce(p_login, p_nick);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pgchat join ' || p_room));

    fresh := NOT EXISTS (SELECT 1 FROM rooms WHERE room = p_room);
    IF fresh THEN
        maker := chat_inet(p_addr);
        IF p_rooms_per_minute > 0 AND maker IS NOT NULL THEN
            PERFORM pg_advisory_xact_lock(hashtext('pgchat rooms ' || host(maker)));
            wait := chat_room_wait(maker, p_rooms_per_minute);
            IF wait > 0 THEN
                RETURN 'wait:' || wait;
            END IF;
        END IF;
    END IF;

    -- Idle sessions of whoever else holds the nick are ended first; a
    -- part is stored for a nick none of whose sessions is left.
    WITH gone AS (
        DELETE FROM sessions s
        WHERE s.room = p_room AND chat_nick_fold(s.nick) = chat_nick_fold(v_nick)
          AND (p_login IS NULL OR s.login IS DISTINCT FROM p_login)
          AND s.last_seen < now() - p_idle
        RETURNING s.nick, s.token_hash
    )
    SELECT array_agg(DISTINCT g.nick) INTO stale
    FROM gone g
    WHERE NOT EXISTS (SELECT 1 FROM sessions o
                      WHERE o.room = p_room AND o.nick = g.nick
                        AND o.token_hash NOT IN (SELECT token_hash FROM gone));
    IF stale IS NOT NULL THEN
        PERFORM chat_post(p_room, stale,
                          array_fill('part'::text, ARRAY[cardinality(stale)]),
                          array_fill(NULL::text, ARRAY[cardinality(stale)]));
    END IF;

    IF p_login IS NOT NULL AND
       EXISTS (SELECT 1 FROM bans b WHERE b.room = p_room AND b.login = p_login) THEN
        RETURN 'banned';
    END IF;
    IF EXISTS (SELECT 1 FROM sessions s
               WHERE s.room = p_room
                 AND chat_nick_fold(s.nick) = chat_nick_fold(v_nick)
                 AND (p_login IS NULL OR s.login IS DISTINCT FROM p_login)) THEN
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

    again := p_login IS NOT NULL AND
             EXISTS (SELECT 1 FROM sessions s
                     WHERE s.room = p_room AND s.login = p_login);
    INSERT INTO sessions (token_hash, room, nick, addr, login)
    VALUES (chat_token_hash(p_token), p_room, v_nick, p_addr, p_login)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'taken';
    END IF;
    IF NOT again THEN
        PERFORM chat_post(p_room, ARRAY[v_nick], ARRAY['join'], ARRAY[NULL::text]);
    END IF;
    IF fresh THEN
        UPDATE rooms SET created_by = maker, created_at = now()
        WHERE room = p_room;
    END IF;
    RETURN 'joined';
END
$$;

-- Bans p_login from p_room as moderator p_by, and ends the login's sessions
-- there with one part message. Returns the sessions ended (a second ban:
-- 0, and no message).
CREATE OR REPLACE FUNCTION chat_ban(p_room text, p_login text, p_by text)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n     int;
    gone  text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pgchat join ' || p_room));
    INSERT INTO bans (room, login, banned_by) VALUES (p_room, p_login, p_by)
    ON CONFLICT DO NOTHING;
    WITH d AS (
        DELETE FROM sessions WHERE room = p_room AND login = p_login
        RETURNING nick
    )
    SELECT count(*), min(nick) INTO n, gone FROM d;
    IF n > 0 THEN
        PERFORM chat_post(p_room, ARRAY[gone], ARRAY['part'], ARRAY[NULL::text]);
    END IF;
    RETURN n;
END
$$;

-- Lifts the ban. Returns whether there was one.
CREATE OR REPLACE FUNCTION chat_unban(p_room text, p_login text)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM bans WHERE room = p_room AND login = p_login;
    RETURN FOUND;
END
$$;
