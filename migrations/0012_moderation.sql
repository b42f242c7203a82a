-- 0012_moderation.sql -- a moderator deletes a message (PGCHAT_AUTH=request,
-- X-Pgchat-Role: moderator). The message stays, as a tombstone: its row
-- becomes type 'deleted' without text, so /history shows where it was and
-- /search finds it no more, and a message of type 'delete' (its text the
-- deleted message's timestamp, its nick the moderator) goes to the room
-- like any other, so every reader, and every worker's window of the room,
-- drops the text. Safe to run twice.

-- The new types, and text with exactly 'msg' and 'delete'. Added NOT VALID
-- and validated after: validating takes no lock that stops writers.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_type_check;
ALTER TABLE messages ADD CONSTRAINT messages_type_check
    CHECK (type IN ('msg', 'join', 'part', 'delete', 'deleted')) NOT VALID;
ALTER TABLE messages VALIDATE CONSTRAINT messages_type_check;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_check;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_text_check;
ALTER TABLE messages ADD CONSTRAINT messages_text_check
    CHECK ((type IN ('msg', 'delete')) = (text IS NOT NULL)) NOT VALID;
ALTER TABLE messages VALIDATE CONSTRAINT messages_text_check;
COMMENT ON COLUMN messages.type IS
    'msg, join or part; deleted: a msg a moderator deleted (no text); delete: the notice of that, its text the deleted message''s timestamp.';

-- Deletes the msg at p_ts in p_room as moderator p_by. Returns the
-- timestamp of the 'delete' notice, or 0 when there is no such msg (never
-- was, or already deleted: two moderators deleting at once store one
-- notice, the row lock decides).
CREATE OR REPLACE FUNCTION chat_delete(p_room text, p_ts bigint, p_by text)
RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE messages SET type = 'deleted', text = NULL
    WHERE room = p_room AND ts = p_ts AND type = 'msg';
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    RETURN chat_post(p_room, ARRAY[p_by], ARRAY['delete'], ARRAY[p_ts::text],
                     ARRAY[NULL::text]);
END
$$;
