-- chat_post: appends messages to one room in array order under the room's
-- row, so that timestamps and sequence numbers grow in commit order.
BEGIN;
SELECT plan(17);

SELECT has_function('chat_post', ARRAY['text', 'text[]', 'text[]', 'text[]'],
    'chat_post(room, nicks, types, texts) exists');
SELECT has_function('chat_post',
    ARRAY['text', 'text[]', 'text[]', 'text[]', 'text[]'],
    'chat_post(room, nicks, types, texts, mids) exists');

SELECT is(chat_post('pgtap-post', '{}', '{}', '{}'), NULL,
    'an empty batch returns NULL');
SELECT is(chat_post('pgtap-post', NULL, NULL, NULL), NULL,
    'a NULL batch returns NULL');
SELECT is_empty($$SELECT 1 FROM rooms WHERE room = 'pgtap-post'$$,
    'an empty batch creates no room');

CREATE TEMP TABLE h1 AS
SELECT chat_post('pgtap-post', ARRAY['alice', 'bob', 'alice'],
                 ARRAY['join', 'msg', 'msg'], ARRAY[NULL, 'one', 'two']) AS head;

SELECT results_eq($$
    SELECT seq, nick, type, text FROM messages
    WHERE room = 'pgtap-post' ORDER BY ts
$$, $$ VALUES (1::bigint, 'alice', 'join', NULL::text), (2, 'bob', 'msg', 'one'),
              (3, 'alice', 'msg', 'two') $$,
    'a batch is stored in array order, numbered 1, 2, 3 in a new room');
SELECT results_eq($$
    SELECT max(ts) - min(ts), count(DISTINCT ts) FROM messages
    WHERE room = 'pgtap-post'
$$, $$ VALUES (2::bigint, 3::bigint) $$,
    'a batch of three takes three consecutive timestamps');
SELECT is((SELECT head FROM h1),
          (SELECT max(ts) FROM messages WHERE room = 'pgtap-post'),
    'chat_post returns the newest timestamp');
SELECT results_eq($$ SELECT last_ts, last_seq FROM rooms WHERE room = 'pgtap-post' $$,
    $$ SELECT head, 3::bigint FROM h1 $$,
    'the room''s row holds the head and the number of messages');
SELECT ok((SELECT head FROM h1) BETWEEN
              floor(extract(epoch FROM clock_timestamp()) * 1000) - 60000
          AND floor(extract(epoch FROM clock_timestamp()) * 1000) + 2,
    'a timestamp is the wall clock in milliseconds');

-- A head ahead of the clock (a burst, or a clock stepped back): the next
-- message still comes after it.
UPDATE rooms SET last_ts = last_ts + 3600000 WHERE room = 'pgtap-post';
CREATE TEMP TABLE h2 AS
SELECT chat_post('pgtap-post', ARRAY['bob'], ARRAY['msg'], ARRAY['three']) AS head;
SELECT is((SELECT head FROM h2), (SELECT head + 3600000 + 1 FROM h1),
    'a head ahead of the clock is followed by head + 1');
SELECT is((SELECT seq FROM messages WHERE room = 'pgtap-post' AND text = 'three'),
    4::bigint, 'sequence numbers go on from the room''s count');

SELECT is(chat_post('pgtap-post', ARRAY['carol', 'dave'], ARRAY['msg', 'msg'],
                    ARRAY['with', 'without'], ARRAY['m-1', NULL]),
          (SELECT head + 2 FROM h2),
    'a batch with mids returns its head too');
SELECT results_eq($$
    SELECT nick, mid FROM messages WHERE room = 'pgtap-post' AND seq > 4 ORDER BY ts
$$, $$ VALUES ('carol', 'm-1'), ('dave', NULL) $$,
    'each message keeps its own mid, NULL for none');

SELECT is_empty($$SELECT 1 FROM messages WHERE room <> 'pgtap-post' AND nick IN ('alice', 'bob')$$,
    'nothing is stored in another room');

SELECT throws_ok($$
    SELECT chat_post('pgtap-post', ARRAY['x'], ARRAY['msg'], ARRAY[NULL::text])
$$, '23514', NULL, 'a msg without text is refused');
SELECT throws_ok($$
    SELECT chat_post('pgtap-post', ARRAY['x'], ARRAY['shout'], ARRAY['hi'])
$$, '23514', NULL, 'a type other than msg, join, part is refused');

SELECT * FROM finish();
ROLLBACK;
