-- chat_recv: the page after a cursor. A cursor more than 1000 messages
-- behind, or before what retention deleted, is behind ("gap") and the page
-- starts after the cut; both sides of each cut.
BEGIN;
SELECT plan(23);

SELECT has_function('chat_recv', ARRAY['text', 'bigint', 'integer'],
    'chat_recv(room, since, limit) exists');

SELECT is_empty($$SELECT * FROM chat_recv('pgtap-recv-none', 0, 200)$$,
    'a room that never had a message has no row at all');

CREATE TEMP TABLE h AS
SELECT chat_post('pgtap-recv', ARRAY['a', 'b', 'c'], ARRAY['msg', 'join', 'msg'],
                 ARRAY['one', NULL, 'three'], ARRAY['m', NULL, NULL]) AS head;
SELECT results_eq($$
    SELECT head, gap, ts - (SELECT head FROM h), nick, type, text, mid
    FROM chat_recv('pgtap-recv', 0, 200)
$$, $$
    SELECT head, false, d::bigint, n, t, x, m FROM h,
        (VALUES (-2, 'a', 'msg', 'one', 'm'), (-1, 'b', 'join', NULL, NULL),
                (0, 'c', 'msg', 'three', NULL)) v(d, n, t, x, m)
$$, 'a cursor of 0 gets every message, oldest first, with the head');
SELECT results_eq($$SELECT text FROM chat_recv('pgtap-recv', 0, 2)$$,
    $$VALUES ('one'), (NULL)$$, 'a limit of 2 gets the oldest 2');
SELECT results_eq($$
    SELECT text FROM chat_recv('pgtap-recv', (SELECT head - 2 FROM h), 200)
$$, $$VALUES (NULL::text), ('three')$$,
    'a cursor gets the messages after it, not the one at it');
SELECT results_eq($$
    SELECT head, gap, ts, nick FROM chat_recv('pgtap-recv', (SELECT head FROM h), 200)
$$, $$SELECT head, false, NULL::bigint, NULL::text FROM h$$,
    'a cursor at the head gets one row with the head and no message');
SELECT results_eq($$
    SELECT head, gap, ts FROM chat_recv('pgtap-recv', (SELECT head + 5 FROM h), 200)
$$, $$SELECT head, false, NULL::bigint FROM h$$,
    'a cursor past the head likewise');
SELECT is_empty($$SELECT 1 FROM chat_recv('pgtap-recv-other', 0, 200)$$,
    'another room sees none of them');

-- The 1000-message window.
SELECT is(chat_post('pgtap-win', array_fill('n'::text, ARRAY[1000]),
                    array_fill('msg'::text, ARRAY[1000]),
                    ARRAY(SELECT 'w' || i FROM generate_series(1, 1000) i)) > 0,
    true, 'a room gets 1000 messages');
SELECT results_eq($$
    SELECT gap, count(*), min(text) FILTER (WHERE ts = (SELECT min(ts) FROM messages WHERE room = 'pgtap-win'))
    FROM chat_recv('pgtap-win', 0, 2000) GROUP BY gap
$$, $$VALUES (false, 1000::bigint, 'w1')$$,
    '1000 messages: a cursor of 0 is not behind, and gets all 1000');
SELECT is(chat_post('pgtap-win', ARRAY['n'], ARRAY['msg'], ARRAY['w1001']) > 0,
    true, 'a 1001st message');
SELECT results_eq($$
    SELECT gap, count(*) FROM chat_recv('pgtap-win', 0, 2000) GROUP BY gap
$$, $$VALUES (true, 1000::bigint)$$,
    '1001 messages: a cursor of 0 is behind, and gets the newest 1000');
SELECT results_eq($$
    SELECT text FROM chat_recv('pgtap-win', 0, 1)
$$, $$VALUES ('w2')$$, 'the page after the gap starts at the 1000th newest');
SELECT results_eq($$
    SELECT gap, text FROM chat_recv('pgtap-win',
        (SELECT ts - 1 FROM messages WHERE room = 'pgtap-win' AND text = 'w1'), 1)
$$, $$VALUES (true, 'w2')$$, 'a cursor just before the 1001st newest is behind');
SELECT results_eq($$
    SELECT gap, text FROM chat_recv('pgtap-win',
        (SELECT ts FROM messages WHERE room = 'pgtap-win' AND text = 'w1'), 1)
$$, $$VALUES (false, 'w2')$$, 'a cursor at the 1001st newest is not behind');
SELECT results_eq($$
    SELECT gap, count(*) FROM chat_recv('pgtap-win',
        (SELECT ts FROM messages WHERE room = 'pgtap-win' AND text = 'w1'), 200)
    GROUP BY gap
$$, $$VALUES (false, 200::bigint)$$, 'a page is at most its limit');

-- After retention: 5 messages 40 days old, then 2 of today.
INSERT INTO rooms VALUES ('pgtap-old',
    floor(extract(epoch FROM now() - interval '40 days') * 1000) + 4, 5);
INSERT INTO messages (room, seq, ts, nick, type, text)
SELECT 'pgtap-old', i, floor(extract(epoch FROM now() - interval '40 days') * 1000) + i - 1,
       'old', 'msg', 'old ' || i
FROM generate_series(1, 5) i;
SELECT is(chat_post('pgtap-old', ARRAY['new', 'new'], ARRAY['msg', 'msg'],
                    ARRAY['new 1', 'new 2']) > 0, true, 'two messages of today');
SELECT results_eq($$SELECT gap, count(*) FROM chat_recv('pgtap-old', 0, 200) GROUP BY gap$$,
    $$VALUES (false, 7::bigint)$$, 'before retention a cursor of 0 gets all 7');
SELECT cmp_ok(chat_expire_once(30, 'pgtap'), '>=', 5::bigint,
    'retention of 30 days runs');
SELECT is_empty($$SELECT 1 FROM messages WHERE room = 'pgtap-old' AND nick = 'old'$$,
    'the old messages are gone');
SELECT results_eq($$SELECT gap, text FROM chat_recv('pgtap-old', 0, 200)$$,
    $$VALUES (true, 'new 1'), (true, 'new 2')$$,
    'after retention a cursor of 0 is behind, and gets what is left');
SELECT results_eq($$
    SELECT gap, count(*) FROM chat_recv('pgtap-old', floor(extract(epoch FROM now() - interval '40 days') * 1000)::bigint + 3, 200)
    GROUP BY gap
$$, $$VALUES (true, 2::bigint)$$, 'a cursor just before the last deleted message is behind');
SELECT results_eq($$
    SELECT gap, count(*) FROM chat_recv('pgtap-old', floor(extract(epoch FROM now() - interval '40 days') * 1000)::bigint + 4, 200)
    GROUP BY gap
$$, $$VALUES (false, 2::bigint)$$, 'a cursor at the last deleted message is not behind');

SELECT * FROM finish();
ROLLBACK;
