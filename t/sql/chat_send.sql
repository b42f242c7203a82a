-- chat_send: a batch of sends in one transaction. Only a token's own room
-- takes its sends, under its nick; a repeated (room, nick, mid) of the last
-- 24 hours stores nothing and answers the original's timestamp.
BEGIN;
SELECT plan(28);

SELECT has_function('chat_send', ARRAY['text[]', 'text[]', 'text[]'],
    'chat_send(tokens, rooms, texts) exists');
SELECT has_function('chat_send', ARRAY['text[]', 'text[]', 'text[]', 'text[]'],
    'chat_send(tokens, rooms, texts, mids) exists');

SELECT is(chat_join('t-ann', 'pgtap-send-a', 'ann', '60 s', 0, NULL, 0), 'joined', 'ann joins room a');
SELECT is(chat_join('t-ben', 'pgtap-send-a', 'ben', '60 s', 0, NULL, 0), 'joined', 'ben joins room a');
SELECT is(chat_join('t-cat', 'pgtap-send-b', 'cat', '60 s', 0, NULL, 0), 'joined', 'cat joins room b');
DELETE FROM messages WHERE room LIKE 'pgtap-send-%';

-- Without mids.
SELECT is_empty($$SELECT chat_send('{}', '{}', '{}')$$, 'an empty batch accepts nothing');
SELECT set_eq($$
    SELECT chat_send(
        ARRAY['t-ann', 't-cat', 't-nobody', 't-ben', 't-cat', 't-ann'],
        ARRAY['pgtap-send-a', 'pgtap-send-b', 'pgtap-send-a', 'pgtap-send-a',
              'pgtap-send-a', 'pgtap-send-a'],
        ARRAY['a1', 'b1', 'x', 'a2', 'not cat''s room', 'a3'])
$$, ARRAY[1, 2, 4, 6],
    'a mixed batch accepts the sends of known tokens in their own rooms');
SELECT results_eq($$
    SELECT nick, text FROM messages WHERE room = 'pgtap-send-a' ORDER BY ts
$$, $$ VALUES ('ann', 'a1'), ('ben', 'a2'), ('ann', 'a3') $$,
    'room a has its sends in batch order, each under its session''s nick');
SELECT results_eq($$
    SELECT nick, type, text FROM messages WHERE room = 'pgtap-send-b'
$$, $$ VALUES ('cat', 'msg', 'b1') $$, 'room b has its one send');
SELECT is_empty($$SELECT 1 FROM messages WHERE text IN ('x', 'not cat''s room')$$,
    'the refused sends are stored nowhere');

-- With mids.
DELETE FROM messages WHERE room LIKE 'pgtap-send-%';
CREATE TEMP TABLE s1 AS
SELECT * FROM chat_send(
    ARRAY['t-ann', 't-ben', 't-ann', 't-cat', 't-ann', 't-nobody'],
    ARRAY['pgtap-send-a', 'pgtap-send-a', 'pgtap-send-a', 'pgtap-send-b',
          'pgtap-send-a', 'pgtap-send-a'],
    ARRAY['one', 'two', 'one again', 'three', 'no mid', 'x'],
    ARRAY['m1', 'm1', 'm1', 'm1', NULL, 'm1']);
SELECT set_eq($$SELECT pos FROM s1$$, ARRAY[1, 2, 3, 4, 5],
    'every send of a known token is answered, repeats included');
SELECT results_eq($$
    SELECT nick, text, mid FROM messages WHERE room = 'pgtap-send-a' ORDER BY ts
$$, $$ VALUES ('ann', 'one', 'm1'), ('ben', 'two', 'm1'), ('ann', 'no mid', NULL) $$,
    'a repeat within the batch is stored once; another nick''s same mid is its own');
SELECT is((SELECT ts FROM s1 WHERE pos = 3), (SELECT ts FROM s1 WHERE pos = 1),
    'the repeat within the batch answers the first''s timestamp');
SELECT set_eq($$SELECT pos, ts FROM s1$$,
    $$SELECT CASE WHEN text = 'one' THEN 1 WHEN text = 'two' THEN 2
                  WHEN text = 'three' THEN 4 ELSE 5 END, ts
      FROM messages WHERE room LIKE 'pgtap-send-%'
      UNION ALL SELECT 3, ts FROM messages WHERE text = 'one'$$,
    'each answer is its stored message''s timestamp');
SELECT results_eq($$SELECT nick, mid FROM messages WHERE room = 'pgtap-send-b'$$,
    $$VALUES ('cat', 'm1')$$, 'the same mid in another room is its own');

-- A later batch repeating them.
CREATE TEMP TABLE s2 AS
SELECT * FROM chat_send(ARRAY['t-ann', 't-cat', 't-ann'],
                        ARRAY['pgtap-send-a', 'pgtap-send-b', 'pgtap-send-a'],
                        ARRAY['one, later', 'three, later', 'no mid'],
                        ARRAY['m1', 'm1', NULL]);
SELECT is((SELECT ts FROM s2 WHERE pos = 1), (SELECT ts FROM s1 WHERE pos = 1),
    'a repeat in a later batch answers the original''s timestamp');
SELECT is((SELECT ts FROM s2 WHERE pos = 2), (SELECT ts FROM s1 WHERE pos = 4),
    'in each room');
SELECT is((SELECT count(*) FROM messages WHERE text LIKE '%later'), 0::bigint,
    'and stores nothing');
SELECT is((SELECT count(*) FROM messages WHERE text = 'no mid'), 2::bigint,
    'a send without a mid is never a repeat');
SELECT cmp_ok((SELECT ts FROM s2 WHERE pos = 3), '>', (SELECT max(ts) FROM s1),
    'a fresh send in a batch of repeats gets a new timestamp');

-- The 24-hour window, both sides.
UPDATE message_mids SET sent_at = now() - interval '24 hours' + interval '1 s'
WHERE room = 'pgtap-send-a' AND nick = 'ann' AND mid = 'm1';
SELECT is((SELECT ts FROM chat_send(ARRAY['t-ann'], ARRAY['pgtap-send-a'],
                                    ARRAY['almost a day'], ARRAY['m1'])),
          (SELECT ts FROM s1 WHERE pos = 1),
    'a mid sent 1 s less than 24 hours ago is a repeat');
UPDATE message_mids SET sent_at = now() - interval '24 hours'
WHERE room = 'pgtap-send-a' AND nick = 'ann' AND mid = 'm1';
SELECT is((SELECT ts FROM chat_send(ARRAY['t-ann'], ARRAY['pgtap-send-a'],
                                    ARRAY['a day'], ARRAY['m1'])),
          (SELECT ts FROM s1 WHERE pos = 1),
    'a mid sent exactly 24 hours ago is a repeat');
UPDATE message_mids SET sent_at = now() - interval '24 hours' - interval '1 s'
WHERE room = 'pgtap-send-a' AND nick = 'ann' AND mid = 'm1';
CREATE TEMP TABLE s3 AS
SELECT * FROM chat_send(ARRAY['t-ann'], ARRAY['pgtap-send-a'],
                        ARRAY['a day and a second'], ARRAY['m1']);
SELECT cmp_ok((SELECT ts FROM s3), '>', (SELECT max(ts) FROM s2),
    'a mid sent 1 s more than 24 hours ago is new again');
SELECT results_eq($$
    SELECT text FROM messages WHERE room = 'pgtap-send-a' AND mid = 'm1' AND nick = 'ann'
    ORDER BY ts
$$, $$ VALUES ('one'), ('a day and a second') $$,
    'and is stored');
SELECT is((SELECT ts FROM chat_send(ARRAY['t-ann'], ARRAY['pgtap-send-a'],
                                    ARRAY['again'], ARRAY['m1'])),
          (SELECT ts FROM s3),
    'its repeat answers the new timestamp');

-- A session ended takes no more sends, repeats included.
SELECT is(chat_part('t-ben', 'pgtap-send-a'), true, 'ben parts');
SELECT is_empty($$SELECT * FROM chat_send(ARRAY['t-ben'], ARRAY['pgtap-send-a'],
                                          ARRAY['two'], ARRAY['m1'])$$,
    'a parted session''s repeat is refused');
SELECT is_empty($$SELECT chat_send(ARRAY['t-ben'], ARRAY['pgtap-send-a'], ARRAY['hi'])$$,
    'a parted session''s send is refused');

SELECT * FROM finish();
ROLLBACK;
