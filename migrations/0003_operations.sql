-- 0003_operations.sql -- what an operator reads with psql, and retention.

-- Every message with a readable time, newest last.
CREATE VIEW chat_history AS
SELECT room,
       to_timestamp(ts / 1000.0) AS time,
       nick,
       type,
       text,
       ts
FROM messages;

-- Who is in which room, and for how long nothing was heard from them.
CREATE VIEW chat_online AS
SELECT room,
       nick,
       floor(extract(epoch FROM now() - last_seen))::int AS idle_seconds,
       joined_at
FROM sessions;

-- Deletes messages older than p_days, at most 10000 per room and call so
-- that a sweep never holds locks for long; each room is walked through its
-- primary key (room, ts). The rooms' counters are kept: timestamps and the
-- 1000-message window go on as before.
CREATE FUNCTION chat_expire(p_days int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    cutoff bigint := floor(extract(epoch FROM now() - make_interval(days => p_days)) * 1000);
    r record;
    n bigint := 0;
    k bigint;
BEGIN
    FOR r IN SELECT room FROM rooms ORDER BY room LOOP
        DELETE FROM messages m
        WHERE m.room = r.room
          AND m.ts IN (SELECT ts FROM messages
                       WHERE room = r.room AND ts < cutoff
                       ORDER BY ts LIMIT 10000);
        GET DIAGNOSTICS k = ROW_COUNT;
        n := n + k;
    END LOOP;
    RETURN n;
END
$$;
