-- chat_before: a page of history, the newest p_limit messages before a
-- cursor, newest first, plus one more row when older ones exist.
BEGIN;
SELECT plan(9);

SELECT has_function('chat_before', ARRAY['text', 'bigint', 'integer'],
    'chat_before(room, before, limit) exists');

CREATE TEMP TABLE h AS
SELECT chat_post('pgtap-hist', array_fill('n'::text, ARRAY[5]),
                 ARRAY['msg', 'join', 'msg', 'part', 'msg'],
                 ARRAY['h1', NULL, 'h3', NULL, 'h5'], ARRAY[NULL, NULL, 'm3', NULL, NULL])
       AS head;
SELECT is(chat_post('pgtap-hist-2', ARRAY['n'], ARRAY['msg'], ARRAY['elsewhere']) > 0,
    true, 'another room has a message');

SELECT results_eq($$
    SELECT ts - (SELECT head FROM h), type, text, mid
    FROM chat_before('pgtap-hist', (SELECT head + 1 FROM h), 2)
$$, $$VALUES (0::bigint, 'msg', 'h5', NULL::text), (-1, 'part', NULL, NULL), (-2, 'msg', 'h3', 'm3')$$,
    'a limit of 2 below the head gets the newest 2, newest first, and one more');
SELECT is((SELECT count(*) FROM chat_before('pgtap-hist', (SELECT head + 1 FROM h), 4)),
    5::bigint, 'a limit of 4 of 5 gets 4 and one more');
SELECT is((SELECT count(*) FROM chat_before('pgtap-hist', (SELECT head + 1 FROM h), 5)),
    5::bigint, 'a limit of 5 of 5 gets 5 and no more');
SELECT results_eq($$
    SELECT text FROM chat_before('pgtap-hist', (SELECT head FROM h), 1)
$$, $$VALUES (NULL::text), ('h3')$$, 'the message at the cursor is not before it');
SELECT results_eq($$
    SELECT text FROM chat_before('pgtap-hist', (SELECT head - 3 FROM h), 10)
$$, $$VALUES ('h1')$$, 'the page before the second message is the first');
SELECT is_empty($$
    SELECT 1 FROM chat_before('pgtap-hist', (SELECT head - 4 FROM h), 10)
$$, 'nothing is before the first message');
SELECT is_empty($$
    SELECT 1 FROM chat_before('pgtap-hist', 9223372036854775807, 10)
    WHERE text = 'elsewhere'
$$, 'no room sees another''s messages');

SELECT * FROM finish();
ROLLBACK;
