-- chat_delete: a moderator's delete leaves a tombstone (type 'deleted', no
-- text) and stores one 'delete' notice naming it; anything else deletes
-- nothing.
BEGIN;
SELECT plan(9);

SELECT has_function('chat_delete', ARRAY['text', 'bigint', 'text'],
    'chat_delete(room, ts, by) exists');

SELECT is(chat_join('t-del', 'pgtap-del', 'alice', '60 s', 0, NULL, 0), 'joined', 'alice joins');
SELECT ok((SELECT count(*) FROM chat_send(ARRAY['t-del'], ARRAY['pgtap-del'], ARRAY['secret words'])) = 1,
    'and says something');
SELECT ok(chat_delete('pgtap-del', (SELECT ts FROM messages WHERE room = 'pgtap-del' AND type = 'msg'), 'mod') > 0,
    'a moderator deletes it');
SELECT results_eq($$
    SELECT nick, type, text FROM messages WHERE room = 'pgtap-del' ORDER BY ts
$$, $$ VALUES ('alice', 'join', NULL::text), ('alice', 'deleted', NULL),
              ('mod', 'delete', (SELECT ts::text FROM messages WHERE room = 'pgtap-del' AND type = 'deleted')) $$,
    'the message is a tombstone without text, followed by the notice naming it');
SELECT is_empty($$SELECT 1 FROM chat_search('pgtap-del', 'secret', 10)$$,
    'search finds the text no more');
SELECT is(chat_delete('pgtap-del', (SELECT ts FROM messages WHERE room = 'pgtap-del' AND type = 'deleted'), 'mod'),
    0::bigint, 'a second delete of it deletes nothing');
SELECT is(chat_delete('pgtap-del', (SELECT ts FROM messages WHERE room = 'pgtap-del' AND type = 'join'), 'mod'),
    0::bigint, 'a join cannot be deleted');
SELECT is((SELECT count(*) FROM messages WHERE room = 'pgtap-del'), 3::bigint,
    'and neither stored a notice');

SELECT * FROM finish();
ROLLBACK;
