-- chat_foreign_sessions: which ids of a batch name a session of another
-- login (or an anonymous one); unknown ids and one's own are not listed.
BEGIN;
SELECT plan(5);

SELECT has_function('chat_foreign_sessions', ARRAY['text[]', 'text[]'],
    'chat_foreign_sessions(tokens, logins) exists');
SELECT is(chat_join('t-fa', 'pgtap-owner', 'alice', '60 s', 0, NULL, 0, 0, 'alice'), 'joined', 'alice joins');
SELECT is(chat_join('t-fn', 'pgtap-owner', 'nobody', '60 s', 0, NULL, 0, 0), 'joined', 'an anonymous session');
SELECT results_eq($$
    SELECT * FROM chat_foreign_sessions(ARRAY['t-fa', 't-fa', 't-fn', 't-none', 't-fa'],
                                        ARRAY['alice', 'bob', 'alice', 'alice', 'Alice'])
$$, $$ VALUES (2), (3), (5) $$,
    'another login''s id, an anonymous one and a login of another case are foreign; one''s own and an unknown id are not');
SELECT is_empty($$ SELECT * FROM chat_foreign_sessions('{}', '{}') $$, 'an empty batch: none');

SELECT * FROM finish();
ROLLBACK;
