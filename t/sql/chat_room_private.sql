-- 0016: rooms marked private. chat_room_private() says whether it changed
-- anything; the table takes only room names; every kind of change fires
-- the statement trigger that tells the workers to read the set again.
BEGIN;
SELECT plan(10);

SELECT has_table('private_rooms', 'the private_rooms table exists');
SELECT has_function('chat_room_private', ARRAY['text', 'boolean'],
    'chat_room_private(room, private) exists');
SELECT is(chat_room_private('pgtap-priv'), true, 'marking a room private: changed');
SELECT is(chat_room_private('pgtap-priv', true), false, 'marking it again: nothing changed');
SELECT is((SELECT count(*)::int FROM private_rooms WHERE room = 'pgtap-priv'), 1, 'one row');
SELECT is(chat_room_private('pgtap-priv', false), true, 'making it public: changed');
SELECT is(chat_room_private('pgtap-priv', false), false, 'again: nothing changed');
SELECT throws_ok($$SELECT chat_room_private('no spaces')$$, '23514', NULL,
    'a name no room can have is refused');
SELECT trigger_is('private_rooms', 'private_rooms_changed', 'chat_private_rooms_changed',
    'every change tells the workers');
SELECT is((SELECT tgtype & 32 FROM pg_trigger WHERE tgname = 'private_rooms_changed')::int, 32,
    '  including TRUNCATE');

SELECT * FROM finish();
ROLLBACK;
