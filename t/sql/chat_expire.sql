-- Retention: chat_expire_once deletes the messages older than p_days,
-- oldest first within each room, at most 10000 a pass, remembers in
-- "expired" how far each room was cut, and keeps the rooms' counters;
-- it is the only form (0018 dropped 0003's, which recorded no cut).
-- Every room here keeps a message of today (what retention does to rooms
-- it empties is 0008's to test).
BEGIN;
SELECT plan(18);

SELECT hasnt_function('chat_expire', ARRAY['integer'],
    'chat_expire(days), which recorded no cut, is gone');
SELECT has_function('chat_expire_once', ARRAY['integer', 'text'],
    'chat_expire_once(days, runner) exists');

CREATE TEMP TABLE c AS
SELECT floor(extract(epoch FROM now() - interval '30 days') * 1000)::bigint AS cutoff;

-- A room of four messages about 30 days old, then one of today.
INSERT INTO rooms SELECT 'pgtap-exp', cutoff + 1, 4 FROM c;
INSERT INTO messages (room, seq, ts, nick, type, text)
SELECT 'pgtap-exp', i + 3, cutoff + i, 'n', 'msg', 'at cutoff ' || i
FROM c, generate_series(-2, 1) i;
SELECT cmp_ok(chat_post('pgtap-exp', ARRAY['n'], ARRAY['msg'], ARRAY['today']), '>',
    0::bigint, 'and a message of today');

SELECT is(chat_expire_once(30, 'pgtap-exp'), 2::bigint,
    '30 days: the 2 messages older than 30 days are deleted');
SELECT results_eq($$
    SELECT text FROM messages WHERE room = 'pgtap-exp' ORDER BY ts
$$, $$VALUES ('at cutoff 0'), ('at cutoff 1'), ('today')$$,
    'a message exactly 30 days old stays, and the newer ones');
SELECT results_eq($$SELECT ts FROM expired WHERE room = 'pgtap-exp'$$,
    $$SELECT cutoff - 1 FROM c$$, 'expired remembers the newest deleted timestamp');
SELECT results_eq($$SELECT last_seq FROM rooms WHERE room = 'pgtap-exp'$$,
    $$VALUES (5::bigint)$$, 'the room''s count of messages is kept');
SELECT results_eq($$
    SELECT task, done FROM maintenance_runs WHERE runner = 'pgtap-exp' AND task = 'expire'
$$, $$VALUES ('expire', 2::bigint)$$, 'the pass is recorded with its runner and count');
SELECT is(chat_expire_once(30, 'pgtap-exp'), 0::bigint, 'a second pass deletes nothing');
SELECT results_eq($$SELECT ts FROM expired WHERE room = 'pgtap-exp'$$,
    $$SELECT cutoff - 1 FROM c$$, 'and leaves the cut where it was');
SELECT is(chat_expire_once(31, 'pgtap-exp'), 0::bigint,
    '31 days: nothing is older');
SELECT is(chat_expire_once(29, 'pgtap-exp'), 2::bigint,
    '29 days: the 2 messages of about 30 days are older');
SELECT results_eq($$SELECT ts FROM expired WHERE room = 'pgtap-exp'$$,
    $$SELECT cutoff + 1 FROM c$$, 'and the cut moves up');

-- The budget: 12000 old messages in two rooms.
INSERT INTO rooms SELECT r, cutoff - 1, 6000 FROM c, (VALUES ('pgtap-exp-a'), ('pgtap-exp-b')) v(r);
INSERT INTO messages (room, seq, ts, nick, type, text)
SELECT r, i, cutoff - 100000 + i, 'n', 'msg', 'old'
FROM c, (VALUES ('pgtap-exp-a'), ('pgtap-exp-b')) v(r), generate_series(1, 6000) i;
SELECT is((SELECT count(*) FROM (
    SELECT chat_post(r, ARRAY['n'], ARRAY['msg'], ARRAY['today'])
    FROM (VALUES ('pgtap-exp-a'), ('pgtap-exp-b')) v(r)) p), 2::bigint,
    'each room has a message of today');
SELECT is(chat_expire_once(30, 'pgtap-exp'), 10000::bigint,
    '12000 old messages: a pass deletes 10000');
SELECT is((SELECT count(*) FROM messages WHERE text = 'old'), 2000::bigint,
    'and leaves 2000');
SELECT is_empty($$
    SELECT 1 FROM messages m JOIN expired e USING (room)
    WHERE m.text = 'old' AND m.ts <= e.ts
$$, 'oldest first: what is left of a room is newer than its cut');
SELECT is(chat_expire_once(30, 'pgtap-exp'), 2000::bigint, 'the next pass deletes the rest');

SELECT * FROM finish();
ROLLBACK;
