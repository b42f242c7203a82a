-- 0011_logins.sql -- sessions of people your site has logged in
-- (PGCHAT_AUTH=request): the site names the user, the user's name is the
-- nick, and one user may hold several sessions in a room (two tabs, a
-- phone and a laptop) while being one person in it: one join message when
-- the first of them starts, one part when the last ends, one line in /who.
-- Anonymous sessions (no login) behave exactly as before. Safe to run
-- twice.

ALTER TABLE sessions ADD COLUMN IF NOT EXISTS login text;
COMMENT ON COLUMN sessions.login IS
    'The user the site''s login named for this session (PGCHAT_AUTH=request); NULL: an anonymous session. The sessions of one login share its nick.';

-- The fold stays unique among anonymous sessions. A login's sessions
-- share their nick, so the index that keeps a nick to one session holds
-- only the others; chat_join keeps a fold to one login under the room's
-- lock, as it always has (the index was the backstop).
CREATE UNIQUE INDEX IF NOT EXISTS sessions_room_nick_fold_anon
    ON sessions (room, chat_nick_fold(nick)) WHERE login IS NULL;
CREATE INDEX IF NOT EXISTS sessions_room_nick_folded
    ON sessions (room, chat_nick_fold(nick));
DROP INDEX IF EXISTS sessions_room_nick_fold;

-- 0008's chat_join with a login: p_login NULL is an anonymous join, as
-- before. With a login the nick is the login; the join is 'taken' only
-- when another login or an anonymous session holds a nick of the same
-- fold, and a login's second session stores no join message.
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

-- The eight-argument form (0008's, the responder's before this): anonymous.
CREATE OR REPLACE FUNCTION chat_join(p_token text, p_room text, p_nick text,
                                     p_idle interval, p_cap int, p_addr text,
                                     p_addr_cap int, p_rooms_per_minute int)
RETURNS text
LANGUAGE sql AS $$
    SELECT chat_join(p_token, p_room, p_nick, p_idle, p_cap, p_addr,
                     p_addr_cap, p_rooms_per_minute, NULL::text)
$$;

-- 0001's chat_part: the part message only when the nick has no session
-- left in the room (always, for an anonymous one).
CREATE OR REPLACE FUNCTION chat_part(p_token text, p_room text) RETURNS boolean
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
    IF NOT EXISTS (SELECT 1 FROM sessions WHERE room = p_room AND nick = gone) THEN
        PERFORM chat_post(p_room, ARRAY[gone], ARRAY['part'], ARRAY[NULL::text]);
    END IF;
    RETURN true;
END
$$;

-- 0008's chat_sweep: still at most 1000 sessions a pass, returning how
-- many ended, but one part per nick that has no session left (a login's
-- two idle tabs part once; one idle tab of two parts nobody).
CREATE OR REPLACE FUNCTION chat_sweep(p_idle interval) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    r     record;
    picks bytea[];
BEGIN
    SELECT array_agg(token_hash) INTO picks
    FROM (SELECT token_hash FROM sessions
          WHERE last_seen < now() - p_idle
          ORDER BY token_hash
          FOR UPDATE SKIP LOCKED
          LIMIT 1000) p;
    IF picks IS NULL THEN
        RETURN 0;
    END IF;
    FOR r IN
        WITH gone AS (
            DELETE FROM sessions
            WHERE token_hash = ANY (picks)
            RETURNING room, nick, last_seen
        ), last AS (
            SELECT g.room, g.nick, max(g.last_seen) AS seen
            FROM gone g
            WHERE NOT EXISTS (SELECT 1 FROM sessions o
                              WHERE o.room = g.room AND o.nick = g.nick
                                AND o.token_hash <> ALL (picks))
            GROUP BY g.room, g.nick
        )
        SELECT room, array_agg(nick ORDER BY seen, nick) AS nicks
        FROM last GROUP BY room ORDER BY room
    LOOP
        PERFORM chat_post(r.room, r.nicks,
                          array_fill('part'::text, ARRAY[cardinality(r.nicks)]),
                          array_fill(NULL::text, ARRAY[cardinality(r.nicks)]));
    END LOOP;
    RETURN cardinality(picks);
END
$$;
