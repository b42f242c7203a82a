-- chat_ban and chat_unban: a banned login's sessions in the room end with
-- one part, its joins there are 'banned' until unbanned; other rooms,
-- other logins and anonymous joins are untouched.
BEGIN;
SELECT plan(12);

SELECT has_function('chat_ban', ARRAY['text', 'text', 'text'], 'chat_ban(room, login, by) exists');
SELECT has_function('chat_unban', ARRAY['text', 'text'], 'chat_unban(room, login) exists');

SELECT is(chat_join('t-b1', 'pgtap-ban', 'bob', '60 s', 0, NULL, 0, 0, 'bob'), 'joined', 'bob joins');
SELECT is(chat_join('t-b2', 'pgtap-ban', 'bob', '60 s', 0, NULL, 0, 0, 'bob'), 'joined', 'twice');
SELECT is(chat_join('t-b3', 'pgtap-ban-2', 'bob', '60 s', 0, NULL, 0, 0, 'bob'), 'joined', 'and in another room');
SELECT is(chat_ban('pgtap-ban', 'bob', 'mona'), 2, 'a moderator bans him: two sessions end');
SELECT results_eq($$
    SELECT nick, type FROM messages WHERE room = 'pgtap-ban' ORDER BY ts
$$, $$ VALUES ('bob', 'join'), ('bob', 'part') $$, 'with one part message');
SELECT is(chat_join('t-b4', 'pgtap-ban', 'bob', '60 s', 0, NULL, 0, 0, 'bob'), 'banned',
    'his join is refused');
SELECT isnt_empty($$SELECT 1 FROM sessions WHERE token_hash = chat_token_hash('t-b3')$$,
    'his session in another room stays');
SELECT is(chat_ban('pgtap-ban', 'bob', 'mona'), 0, 'a second ban ends nothing');
SELECT is(chat_unban('pgtap-ban', 'bob'), true, 'the ban is lifted');
SELECT is(chat_join('t-b5', 'pgtap-ban', 'bob', '60 s', 0, NULL, 0, 0, 'bob'), 'joined',
    'and he joins again');

SELECT * FROM finish();
ROLLBACK;
