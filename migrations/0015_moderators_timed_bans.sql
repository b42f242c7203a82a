-- 0015_moderators_timed_bans.sql -- moderators named in the database, the
-- author's own delete within a time window, and bans for a time
-- (PGCHAT_AUTH=request). The site's X-Pgchat-Role: moderator still
-- counts; a row in moderators counts as well, for one room or (room NULL)
-- all of them. Safe to run twice.

CREATE TABLE IF NOT EXISTS moderators (
    login text NOT NULL,
    room  text
);
CREATE UNIQUE INDEX IF NOT EXISTS moderators_login_room
    ON moderators (login, coalesce(room, ''));
COMMENT ON TABLE moderators IS
    'Logins that moderate a room (room NULL: every room) whatever the site''s X-Pgchat-Role says.';

ALTER TABLE bans ADD COLUMN IF NOT EXISTS banned_until timestamptz;
COMMENT ON COLUMN bans.banned_until IS
    'When the ban ends by itself; NULL: when a moderator lifts it.';

-- Whether p_login moderates p_room by the database's word.
CREATE OR REPLACE FUNCTION chat_is_moderator(p_login text, p_room text)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM moderators
                   WHERE login = p_login AND (room IS NULL OR room = p_room))
$$;

-- Whether p_login is banned from p_room now.
CREATE OR REPLACE FUNCTION chat_is_banned(p_login text, p_room text)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM bans
                   WHERE room = p_room AND login = p_login
                     AND (banned_until IS NULL OR banned_until > now()))
$$;

-- The bans in force, for psql and the README.
CREATE OR REPLACE VIEW chat_bans AS
    SELECT room, login, banned_by, banned_at, banned_until
    FROM bans
    WHERE banned_until IS NULL OR banned_until > now();
COMMENT ON VIEW chat_bans IS
    'The bans in force: expired ones are left out (and replaced by the next ban).';

-- 0013's chat_join, with a ban that has ended no more refusing.
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

    IF p_login IS NOT NULL AND chat_is_banned(p_login, p_room) THEN
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

-- A delete asked for by p_by over the API: allowed to a moderator (the
-- site's word, p_moderator, or the database's), or to the message's
-- author within p_window of its timestamp. Returns -1 when not allowed,
-- else as chat_delete (0: no such msg).
CREATE OR REPLACE FUNCTION chat_delete_as(p_room text, p_ts bigint, p_by text,
                                          p_moderator boolean, p_window interval)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    author text;
BEGIN
    IF NOT (p_moderator OR chat_is_moderator(p_by, p_room)) THEN
        SELECT nick INTO author FROM messages
        WHERE room = p_room AND ts = p_ts AND type = 'msg';
        IF author IS NULL THEN
            RETURN 0;
        END IF;
        IF author <> p_by OR p_window <= interval '0'
           OR p_ts < (extract(epoch FROM now() - p_window) * 1000)::bigint THEN
            RETURN -1;
        END IF;
    END IF;
    RETURN chat_delete(p_room, p_ts, p_by);
END
$$;

-- 0013's chat_ban, for a time: p_for NULL bans until chat_unban. A ban of
-- someone banned already replaces it (a new end, a new moderator). Returns
-- the sessions ended.
CREATE OR REPLACE FUNCTION chat_ban(p_room text, p_login text, p_by text,
                                    p_for interval)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n     int;
    gone  text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pgchat join ' || p_room));
    INSERT INTO bans (room, login, banned_by, banned_until)
    VALUES (p_room, p_login, p_by, now() + p_for)
    ON CONFLICT (room, login) DO UPDATE
        SET banned_by = EXCLUDED.banned_by, banned_at = now(),
            banned_until = EXCLUDED.banned_until;
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

-- 0013's three-argument form: until lifted.
CREATE OR REPLACE FUNCTION chat_ban(p_room text, p_login text, p_by text)
RETURNS int
LANGUAGE sql AS $$
    SELECT chat_ban(p_room, p_login, p_by, NULL::interval)
$$;

-- A ban or unban asked for over the API: -1 when p_by moderates p_room
-- neither by the site's word (p_moderator) nor the database's; else
-- chat_ban's sessions ended (p_for NULL: until lifted), or for an unban
-- 1 when a ban in force was lifted, 0 when there was none.
CREATE OR REPLACE FUNCTION chat_ban_as(p_room text, p_login text, p_by text,
                                       p_moderator boolean, p_for interval,
                                       p_unban boolean)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    was boolean;
BEGIN
    IF NOT (p_moderator OR chat_is_moderator(p_by, p_room)) THEN
        RETURN -1;
    END IF;
    IF p_unban THEN
        DELETE FROM bans WHERE room = p_room AND login = p_login
        RETURNING (banned_until IS NULL OR banned_until > now()) INTO was;
        RETURN CASE WHEN was THEN 1 ELSE 0 END;
    END IF;
    RETURN chat_ban(p_room, p_login, p_by, p_for);
END
$$;
