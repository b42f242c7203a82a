-- chat_part: ends the token's session in that room with one part message;
-- anything else is not an error and changes nothing.
BEGIN;
SELECT plan(10);

SELECT has_function('chat_part', ARRAY['text', 'text'],
    'chat_part(token, room) exists');

SELECT is(chat_join('t-bob', 'pgtap-part', 'bob', '60 s', 0, NULL, 0), 'joined',
    'bob joins');
SELECT is(chat_part('t-bob', 'pgtap-part-2'), false,
    'a part naming another room is refused');
SELECT isnt_empty($$SELECT 1 FROM sessions WHERE token_hash = chat_token_hash('t-bob')$$,
    'and the session stays');
SELECT is(chat_part('t-nobody', 'pgtap-part'), false, 'an unknown token parts nothing');
SELECT is(chat_part('t-bob', 'pgtap-part'), true, 'bob parts');
SELECT is_empty($$SELECT 1 FROM sessions WHERE token_hash = chat_token_hash('t-bob')$$,
    'his session is gone');
SELECT results_eq($$
    SELECT nick, type, text FROM messages WHERE room = 'pgtap-part' ORDER BY ts
$$, $$ VALUES ('bob', 'join', NULL::text), ('bob', 'part', NULL) $$,
    'one part message follows his join');
SELECT is(chat_part('t-bob', 'pgtap-part'), false, 'a second part is refused');
SELECT is((SELECT count(*) FROM messages WHERE room = 'pgtap-part'), 2::bigint,
    'and stores nothing');

SELECT * FROM finish();
ROLLBACK;
