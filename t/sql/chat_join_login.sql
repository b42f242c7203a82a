-- chat_join with a login (the 9-argument form, PGCHAT_AUTH=request), and
-- chat_part and chat_sweep after it: a login's sessions share its nick and
-- are one person in the room (one join, one part, one line in /who); a
-- nick of the same fold held by another login or an anonymous session is
-- taken either way.
BEGIN;
SELECT plan(21);

SELECT has_function('chat_join',
    ARRAY['text', 'text', 'text', 'interval', 'integer', 'text', 'integer',
          'integer', 'text'],
    'chat_join(token, room, nick, idle, cap, addr, addr_cap, rooms, login) exists');

SELECT is(chat_join('t-a1', 'pgtap-login', 'mallory', '60 s', 0, NULL, 0, 0, 'alice'),
    'joined', 'a login joins');
SELECT results_eq($$
    SELECT nick, login FROM sessions WHERE token_hash = chat_token_hash('t-a1')
$$, $$ VALUES ('alice', 'alice') $$,
    'its nick is the login, whatever nick was asked for');
SELECT is(chat_join('t-a2', 'pgtap-login', 'alice', '60 s', 0, NULL, 0, 0, 'alice'),
    'joined', 'the same login joins again: a second session');
SELECT is((SELECT count(*) FROM sessions WHERE room = 'pgtap-login' AND nick = 'alice'),
    2::bigint, 'two sessions share the nick');
SELECT results_eq($$
    SELECT nick, type FROM messages WHERE room = 'pgtap-login' ORDER BY ts
$$, $$ VALUES ('alice', 'join') $$,
    'and only the first stored a join');

SELECT is(chat_join('t-x1', 'pgtap-login', 'AIice', '60 s', 0, NULL, 0, 0, 'AIice'),
    'taken', 'another login whose name folds the same is taken');
SELECT is(chat_join('t-x2', 'pgtap-login', 'alice', '60 s', 0, NULL, 0, 0),
    'taken', 'an anonymous join of the nick is taken');
SELECT is(chat_join('t-x3', 'pgtap-login', 'alice', '60 s', 0, NULL, 0),
    'taken', 'and so in the 7-argument form');

SELECT is(chat_join('t-b1', 'pgtap-login', 'bob', '60 s', 0, NULL, 0, 0),
    'joined', 'an anonymous bob joins');
SELECT is(chat_join('t-b2', 'pgtap-login', 'bob', '60 s', 0, NULL, 0, 0, 'bob'),
    'taken', 'a login named bob cannot join beside him');
SELECT is(chat_join('t-b3', 'pgtap-login', 'bob', '60 s', 0, NULL, 0, 0),
    'taken', 'nor a second anonymous bob');

SELECT is(chat_part('t-a1', 'pgtap-login'), true, 'one of alice''s sessions parts');
SELECT is((SELECT count(*) FROM messages WHERE room = 'pgtap-login' AND type = 'part'),
    0::bigint, 'no part while her other session is in the room');
SELECT is(chat_part('t-a2', 'pgtap-login'), true, 'her last session parts');
SELECT results_eq($$
    SELECT nick FROM messages WHERE room = 'pgtap-login' AND type = 'part'
$$, $$ VALUES ('alice') $$, 'now one part is stored');

-- The sweep: two idle sessions of one login part once; an idle one beside
-- a live one parts nobody.
SELECT is(chat_join('t-c1', 'pgtap-sweep-l', 'carol', '60 s', 0, NULL, 0, 0, 'carol'), 'joined', 'carol joins');
SELECT is(chat_join('t-c2', 'pgtap-sweep-l', 'carol', '60 s', 0, NULL, 0, 0, 'carol'), 'joined', 'twice');
SELECT is(chat_join('t-d1', 'pgtap-sweep-l', 'dave', '60 s', 0, NULL, 0, 0, 'dave'), 'joined', 'dave joins');
SELECT is(chat_join('t-d2', 'pgtap-sweep-l', 'dave', '60 s', 0, NULL, 0, 0, 'dave'), 'joined', 'twice');
UPDATE sessions SET last_seen = now() - interval '1 hour'
WHERE token_hash IN (chat_token_hash('t-c1'), chat_token_hash('t-c2'), chat_token_hash('t-d1'));
SELECT chat_sweep('60 s');
SELECT results_eq($$
    SELECT nick FROM messages WHERE room = 'pgtap-sweep-l' AND type = 'part'
$$, $$ VALUES ('carol') $$,
    'carol''s two idle sessions part once, dave''s one idle session of two not at all');

SELECT * FROM finish();
ROLLBACK;
