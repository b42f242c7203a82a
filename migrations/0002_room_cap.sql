-- 0002_room_cap.sql -- a cap on the sessions of one room.
--
-- chat_join now answers 'joined', 'taken' or 'full'. Joins of one room are
-- serialised by an advisory lock so that the cap is exact; the sweeper does
-- not take that lock, so a join waiting on a session being swept cannot
-- deadlock with it.

DROP FUNCTION chat_join(text, text, text, interval);

CREATE FUNCTION chat_join(p_token text, p_room text, p_nick text,
                          p_idle interval, p_cap int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    stale text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pgchat join ' || p_room));

    DELETE FROM sessions
    WHERE room = p_room AND nick = p_nick AND last_seen < now() - p_idle
    RETURNING nick INTO stale;
    IF stale IS NOT NULL THEN
        PERFORM chat_post(p_room, ARRAY[stale], ARRAY['part'], ARRAY[NULL::text]);
    END IF;

    IF EXISTS (SELECT 1 FROM sessions WHERE room = p_room AND nick = p_nick) THEN
        RETURN 'taken';
    END IF;
    IF p_cap > 0 AND (SELECT count(*) FROM sessions WHERE room = p_room) >= p_cap THEN
        RETURN 'full';
    END IF;

    INSERT INTO sessions (token_hash, room, nick)
    VALUES (chat_token_hash(p_token), p_room, p_nick)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'taken';
    END IF;
    PERFORM chat_post(p_room, ARRAY[p_nick], ARRAY['join'], ARRAY[NULL::text]);
    RETURN 'joined';
END
$$;
