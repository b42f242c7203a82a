-- chat_join (the 7-argument form): a session per nick and room, whatever
-- the nick's case; a stale holder of the nick ended first; the room cap and
-- the per-address cap, 0 meaning none, exact on both sides.
BEGIN;
SELECT plan(29);

SELECT has_function('chat_join',
    ARRAY['text', 'text', 'text', 'interval', 'integer', 'text', 'integer'],
    'chat_join(token, room, nick, idle, cap, addr, addr_cap) exists');

-- A join, and what it stores.
SELECT is(chat_join('t-alice', 'pgtap-join', 'alice', '60 s', 0, '192.0.2.1', 0),
    'joined', 'a free nick joins');
SELECT results_eq($$
    SELECT room, nick, addr FROM sessions WHERE token_hash = chat_token_hash('t-alice')
$$, $$ VALUES ('pgtap-join', 'alice', '192.0.2.1') $$,
    'the session is stored under the token''s hash, with its address');
SELECT results_eq($$
    SELECT nick, type, text FROM messages WHERE room = 'pgtap-join'
$$, $$ VALUES ('alice', 'join', NULL::text) $$,
    'a join stores one join message');

-- Taken, whatever the case.
SELECT is(chat_join('t-alice2', 'pgtap-join', 'alice', '60 s', 0, NULL, 0),
    'taken', 'the same nick again is taken');
SELECT is(chat_join('t-alice3', 'pgtap-join', 'ALICE', '60 s', 0, NULL, 0),
    'taken', 'the nick in another case is taken');
SELECT is(chat_join('t-alice4', 'pgtap-join', 'Alice', '60 s', 0, NULL, 0),
    'taken', 'the nick in mixed case is taken');
SELECT is((SELECT count(*) FROM messages WHERE room = 'pgtap-join'), 1::bigint,
    'a refused join stores nothing');
SELECT is((SELECT count(*) FROM sessions WHERE room = 'pgtap-join'), 1::bigint,
    'a refused join makes no session');
SELECT is(chat_join('t-alice5', 'pgtap-join-2', 'alice', '60 s', 0, NULL, 0),
    'joined', 'the same nick joins another room');

-- A stale holder, both sides of the idle time.
UPDATE sessions SET last_seen = now() - interval '59 s'
WHERE token_hash = chat_token_hash('t-alice');
SELECT is(chat_join('t-alice6', 'pgtap-join', 'alice', '60 s', 0, NULL, 0),
    'taken', 'a holder idle for less than the idle time keeps the nick');
UPDATE sessions SET last_seen = now() - interval '60 s'
WHERE token_hash = chat_token_hash('t-alice');
SELECT is(chat_join('t-alice6', 'pgtap-join', 'alice', '60 s', 0, NULL, 0),
    'taken', 'a holder idle for exactly the idle time keeps the nick');
UPDATE sessions SET last_seen = now() - interval '61 s'
WHERE token_hash = chat_token_hash('t-alice');
SELECT is(chat_join('t-alice7', 'pgtap-join', 'Alice', '60 s', 0, NULL, 0),
    'joined', 'a holder idle for longer than the idle time loses the nick');
SELECT results_eq($$
    SELECT nick, type FROM messages WHERE room = 'pgtap-join' ORDER BY ts
$$, $$ VALUES ('alice', 'join'), ('alice', 'part'), ('Alice', 'join') $$,
    'the stale holder parts, then the new one joins');
SELECT is_empty($$SELECT 1 FROM sessions WHERE token_hash = chat_token_hash('t-alice')$$,
    'the stale holder''s session is gone');

-- The room cap.
SELECT is(chat_join('t-c1', 'pgtap-cap', 'c1', '60 s', 2, NULL, 0), 'joined',
    'cap 2: the first joins');
SELECT is(chat_join('t-c2', 'pgtap-cap', 'c2', '60 s', 2, NULL, 0), 'joined',
    'cap 2: the second joins');
SELECT is(chat_join('t-c3', 'pgtap-cap', 'c3', '60 s', 2, NULL, 0), 'full',
    'cap 2: the third is refused, the room is full');
SELECT is(chat_join('t-c3', 'pgtap-cap', 'c3', '60 s', 3, NULL, 0), 'joined',
    'cap 3: the third joins');
SELECT is(chat_join('t-c4', 'pgtap-cap', 'c4', '60 s', 0, NULL, 0), 'joined',
    'cap 0: no cap');
SELECT is(chat_join('t-c5', 'pgtap-cap', 'c1', '60 s', 1, NULL, 0), 'taken',
    'a taken nick in a full room is told taken');
SELECT is((SELECT count(*) FROM messages WHERE room = 'pgtap-cap' AND nick = 'c3'),
    1::bigint, 'a join refused as full stores nothing');

-- The per-address cap.
SELECT is(chat_join('t-a1', 'pgtap-addr', 'a1', '60 s', 0, '198.51.100.7', 2),
    'joined', 'addr cap 2: the first from an address joins');
SELECT is(chat_join('t-a2', 'pgtap-addr', 'a2', '60 s', 0, '198.51.100.7', 2),
    'joined', 'addr cap 2: the second from it joins');
SELECT is(chat_join('t-a3', 'pgtap-addr', 'a3', '60 s', 0, '198.51.100.7', 2),
    'addr_full', 'addr cap 2: the third from it is refused');
SELECT is(chat_join('t-a4', 'pgtap-addr', 'a4', '60 s', 0, '198.51.100.8', 2),
    'joined', 'addr cap 2: another address joins');
SELECT is(chat_join('t-a5', 'pgtap-addr', 'a5', '60 s', 0, NULL, 2),
    'joined', 'addr cap 2: an unknown address is not capped');
SELECT is(chat_join('t-a6', 'pgtap-addr-2', 'a6', '60 s', 0, '198.51.100.7', 2),
    'joined', 'the address cap is per room');
SELECT is(chat_join('t-a7', 'pgtap-addr', 'a7', '60 s', 0, '198.51.100.7', 0),
    'joined', 'addr cap 0: no cap');

SELECT * FROM finish();
ROLLBACK;
