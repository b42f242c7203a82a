-- 0009_notify_payload.sql -- a room's notification carries what its batch
-- committed, so that a worker whose window ends where the batch began can
-- append it without a query.
--
-- The payload is "ROOM HEAD PREV JSON": the room, its new head, its head
-- before the batch (0 for a new room), and the batch's messages as a JSON
-- array of [ts, nick, type, text, mid]. Where that would not fit
-- PostgreSQL's 8000-byte payload, it is "ROOM HEAD", as before, and readers
-- query. Notifications reach each listener in commit order, and the room's
-- row lock orders the batches, so PREV chains them: a worker that missed
-- one (a reconnect, an evicted window) sees a PREV that is not its head,
-- and queries.
--
-- What that means for a shared database: any role that can connect may
-- LISTEN on "pgchat" and read the messages as they are committed, without
-- any privilege on the tables. The embedded cluster has no such role. A
-- database that has them turns the payload off with
--     ALTER DATABASE chat SET pgchat.notify_payload = off;
-- (read by each new connection): notifications then carry "ROOM HEAD"
-- only, the room's name and a number, and every worker queries, as before.

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
    -- the batch is read under it. (Two first batches of a new room both
    -- read no row, and the second says 0 for the first's head: a worker
    -- then sees a PREV that is not its head, and queries.)
    SELECT r.last_ts INTO prev FROM rooms r WHERE r.room = p_room FOR UPDATE;
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

    -- A batch whose texts alone would not fit is not serialised.
    IF coalesce(current_setting('pgchat.notify_payload', true), '') <> 'off'
       AND (SELECT coalesce(sum(octet_length(t.text)), 0)
            FROM unnest(p_text) AS t(text)) < 8000 THEN
        SELECT p_room || ' ' || head || ' ' || coalesce(prev, 0) || ' '
               || json_agg(json_build_array(head - n + m.o, m.nick, m.type,
                                            m.text, m.mid) ORDER BY m.o)
        INTO payload
        FROM unnest(p_nick, p_type, p_text, p_mid)
             WITH ORDINALITY AS m(nick, type, text, mid, o);
    END IF;
    IF payload IS NULL OR octet_length(payload) > 7999 THEN
        payload := p_room || ' ' || head;
    END IF;
    PERFORM pg_notify('pgchat', payload);
    RETURN head;
END
$$;
