-- 0016_private_rooms.sql -- rooms an operator marks private: served only to
-- a user whose site login names the room in X-Pgchat-Rooms (a list of "*"
-- or no list does not count), to nobody when the chat has no login, and
-- never listed. The workers keep the set and read it again when told.
-- Safe to run twice.
--
-- A table of its own, not a column of "rooms": retention deletes rooms
-- nobody uses, and a room must not become public by being idle.

CREATE TABLE IF NOT EXISTS private_rooms (
    room      text        PRIMARY KEY
                          CHECK (room ~ '^[A-Za-z0-9_-]{1,64}$'),
    marked_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE private_rooms IS
    'Rooms served only to users whose site login lists them by name (PGCHAT_AUTH=request).';

-- Every change, from chat_room_private() or from psql, tells the workers
-- to read the set again. The payload names no room and states nothing:
-- any role that can connect may NOTIFY, so a worker believes only the
-- table.
CREATE OR REPLACE FUNCTION chat_private_rooms_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgchat', '*private');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS private_rooms_changed ON private_rooms;
CREATE TRIGGER private_rooms_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON private_rooms
    FOR EACH STATEMENT EXECUTE FUNCTION chat_private_rooms_changed();

-- Marks p_room private (p_private true) or public again. Returns whether
-- that changed anything. The room need not exist yet: marking it before
-- its first join means nobody ever saw it public.
CREATE OR REPLACE FUNCTION chat_room_private(p_room text,
                                             p_private boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF p_private THEN
        INSERT INTO private_rooms (room) VALUES (p_room)
        ON CONFLICT (room) DO NOTHING;
    ELSE
        DELETE FROM private_rooms WHERE room = p_room;
    END IF;
    RETURN FOUND;
END
$$;
