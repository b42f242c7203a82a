-- chat_touch: marks sessions as seen now; returns how many it marked.
BEGIN;
SELECT plan(7);

SELECT has_function('chat_touch', ARRAY['text[]'], 'chat_touch(tokens) exists');
SELECT is(chat_join('t-1', 'pgtap-touch', 'one', '60 s', 0, NULL, 0), 'joined', 'one joins');
SELECT is(chat_join('t-2', 'pgtap-touch', 'two', '60 s', 0, NULL, 0), 'joined', 'two joins');
UPDATE sessions SET last_seen = now() - interval '50 s' WHERE room = 'pgtap-touch';

SELECT is(chat_touch('{}'), 0, 'no token touches nothing');
SELECT is(chat_touch(ARRAY['t-1', 't-nobody', 't-1']), 1,
    'a token named twice and an unknown one: one session touched');
SELECT results_eq($$
    SELECT nick, last_seen = now() FROM sessions WHERE room = 'pgtap-touch' ORDER BY nick
$$, $$VALUES ('one', true), ('two', false)$$,
    'the touched session is seen now, the other is not');
SELECT is((SELECT count(*) FROM messages WHERE room = 'pgtap-touch' AND type <> 'join'),
    0::bigint, 'a touch stores no message');

SELECT * FROM finish();
ROLLBACK;
