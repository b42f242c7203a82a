-- 0008's pieces: chat_nick_fold (look-alike nicks are one nick),
-- chat_inet, chat_room_wait (how long an address waits to make one more
-- room) and chat_join's room cap (the eight-argument form), each on both
-- sides of its limit.
BEGIN;
SELECT plan(24);

-- Folds: case, i/I/l/L/1, o/O/0, rn/m.
SELECT is(chat_nick_fold('Alice'), chat_nick_fold('alice'), 'case folds');
SELECT is(chat_nick_fold('AIice'), chat_nick_fold('Alice'), 'capital I folds to l');
SELECT is(chat_nick_fold('A1ice'), chat_nick_fold('Alice'), '1 folds to l');
SELECT is(chat_nick_fold('0scar'), chat_nick_fold('Oscar'), '0 folds to o');
SELECT is(chat_nick_fold('rnary'), chat_nick_fold('mary'), 'rn folds to m');
SELECT isnt(chat_nick_fold('bob'), chat_nick_fold('bab'), 'other letters stay apart');
SELECT isnt(chat_nick_fold('rn'), chat_nick_fold('n'), 'rn is not n');
SELECT is(chat_nick_fold(NULL), NULL, 'NULL stays NULL (strict)');

-- Addresses.
SELECT is(chat_inet('192.0.2.1'), '192.0.2.1'::inet, 'an IPv4 address');
SELECT is(chat_inet('2001:db8::1'), '2001:db8::1'::inet, 'an IPv6 address');
SELECT is(chat_inet('unix:'), NULL, 'a unix socket is no address');
SELECT is(chat_inet(''), NULL, 'nor is nothing');

-- chat_room_wait, with the transaction's clock standing still.
INSERT INTO rooms (room, last_ts, last_seq, created_by, created_at) VALUES
    ('pgtap-w1', 0, 0, '192.0.2.9', now() - interval '10 s'),
    ('pgtap-w2', 0, 0, '192.0.2.9', now() - interval '30 s'),
    ('pgtap-w3', 0, 0, '192.0.2.9', now() - interval '61 s');
SELECT is(chat_room_wait('192.0.2.9', 1), 50, 'one a minute: 50 s until the newest is a minute old');
SELECT is(chat_room_wait('192.0.2.9', 2), 30, 'two a minute: 30 s until the second newest is');
SELECT is(chat_room_wait('192.0.2.9', 3), 0, 'three a minute: a room older than a minute does not count');
SELECT is(chat_room_wait('192.0.2.10', 1), 0, 'another address waits for nothing');

-- chat_join's room cap: 2 a minute for 192.0.2.20.
SELECT is(chat_join('t-r1', 'pgtap-made-1', 'maker', '60 s', 0, '192.0.2.20', 0, 2),
    'joined', 'the first room an address makes');
SELECT is(chat_join('t-r2', 'pgtap-made-2', 'maker', '60 s', 0, '192.0.2.20', 0, 2),
    'joined', 'the second');
SELECT is(chat_join('t-r3', 'pgtap-made-3', 'maker', '60 s', 0, '192.0.2.20', 0, 2),
    'wait:60', 'the third in the same minute waits until the first is a minute old');
SELECT is((SELECT count(*) FROM rooms WHERE room = 'pgtap-made-3'), 0::bigint,
    'and makes no room');
SELECT is(chat_join('t-r4', 'pgtap-made-1', 'other', '60 s', 0, '192.0.2.20', 0, 2),
    'joined', 'joining a room that exists is not capped');
SELECT is(chat_join('t-r5', 'pgtap-made-4', 'maker', '60 s', 0, 'unix:', 0, 2),
    'joined', 'an address that is none (a unix socket) is not capped');
SELECT is(chat_join('t-r6', 'pgtap-made-5', 'maker', '60 s', 0, '192.0.2.20', 0, 0),
    'joined', 'a cap of 0 is none');
SELECT results_eq($$
    SELECT room, created_by FROM rooms WHERE room LIKE 'pgtap-made-%' ORDER BY room
$$, $$ VALUES ('pgtap-made-1', '192.0.2.20'::inet), ('pgtap-made-2', '192.0.2.20'::inet),
              ('pgtap-made-4', NULL::inet), ('pgtap-made-5', '192.0.2.20'::inet) $$,
    'each room made remembers its maker');

SELECT * FROM finish();
ROLLBACK;
