-- chat_search: a room's messages matching a web-style query, newest first,
-- both among the newest 1000 and older than them.
BEGIN;
SELECT plan(21);

SELECT has_function('chat_search', ARRAY['text', 'text', 'integer'],
    'chat_search(room, query, limit) exists');

SELECT is(chat_post('pgtap-find', ARRAY['Ann', 'ben', 'cat', 'ann', 'ben', 'dog', 'eve'],
                    ARRAY['msg', 'msg', 'msg', 'msg', 'msg', 'join', 'msg'],
                    ARRAY['The quick brown fox', 'lazy dogs sleep', 'Quick, the FOX!',
                          'brown bread', 'a fox is quick and brown', NULL,
                          'cats and catalogues'],
                    ARRAY['m1', NULL, NULL, NULL, NULL, NULL, NULL]) > 0,
    true, 'a room of seven messages');
SELECT is(chat_post('pgtap-find-2', ARRAY['zed'], ARRAY['msg'], ARRAY['quick fox elsewhere']) > 0,
    true, 'another room has a match');

CREATE FUNCTION pg_temp.found(q text, l int DEFAULT 50) RETURNS SETOF text
LANGUAGE sql AS $$ SELECT text FROM chat_search('pgtap-find', q, l) $$;

SELECT results_eq($$SELECT * FROM pg_temp.found('fox')$$,
    $$VALUES ('a fox is quick and brown'), ('Quick, the FOX!'), ('The quick brown fox')$$,
    'a word is found in any case, newest first');
SELECT results_eq($$SELECT * FROM pg_temp.found('FOX quick')$$,
    $$VALUES ('a fox is quick and brown'), ('Quick, the FOX!'), ('The quick brown fox')$$,
    'all the words, in any order');
SELECT results_eq($$SELECT * FROM pg_temp.found('fox bread')$$,
    $$SELECT NULL::text WHERE false$$, 'every word must be there');
SELECT results_eq($$SELECT * FROM pg_temp.found('"quick brown"')$$,
    $$VALUES ('The quick brown fox')$$, 'a phrase is found in its order only');
SELECT results_eq($$SELECT * FROM pg_temp.found('fox -brown')$$,
    $$VALUES ('Quick, the FOX!')$$, 'a -word excludes');
SELECT results_eq($$SELECT * FROM pg_temp.found('fox -"quick brown"')$$,
    $$VALUES ('a fox is quick and brown'), ('Quick, the FOX!')$$,
    'a -"phrase" excludes that phrase only');
SELECT results_eq($$SELECT * FROM pg_temp.found('bread or dogs')$$,
    $$VALUES ('brown bread'), ('lazy dogs sleep')$$, 'or finds either');
SELECT is_empty($$SELECT * FROM pg_temp.found('dog')$$,
    'no stemming: dog does not find dogs, nor the join of dog');
SELECT is_empty($$SELECT * FROM pg_temp.found('cat')$$,
    'whole words only: cat finds neither cats nor catalogues, nor the nick cat');
SELECT is_empty($$SELECT * FROM pg_temp.found('elsewhere')$$,
    'no room sees another''s messages');
SELECT results_eq($$
    SELECT nick, type, mid FROM chat_search('pgtap-find', 'brown fox', 1)
$$, $$VALUES ('ben', 'msg', NULL::text)$$, 'a limit of 1 gets the newest match, with nick and type');
SELECT is((SELECT count(*) FROM pg_temp.found('fox', 2)), 2::bigint,
    'a limit of 2 of 3 matches gets 2');
SELECT is((SELECT count(*) FROM pg_temp.found('fox', 3)), 3::bigint,
    'a limit of 3 of 3 gets 3');
SELECT is((SELECT count(*) FROM pg_temp.found('fox', 4)), 3::bigint,
    'a limit of 4 of 3 gets 3');

-- Older than the newest 1000: 3 matches among 5 old messages, then 999
-- messages, 1 match among them, then 1 more match (the newest).
SELECT is(chat_post('pgtap-deep',
    array_fill('n'::text, ARRAY[1005]), array_fill('msg'::text, ARRAY[1005]),
    ARRAY(SELECT CASE WHEN i IN (1, 3, 5, 500, 1005) THEN 'needle ' || i
                      ELSE 'hay ' || i END
          FROM generate_series(1, 1005) i)) > 0,
    true, 'a room of 1005 messages');
SELECT results_eq($$SELECT text FROM chat_search('pgtap-deep', 'needle', 50)$$,
    $$VALUES ('needle 1005'), ('needle 500'), ('needle 5'), ('needle 3'), ('needle 1')$$,
    'matches older than the newest 1000 are found too, once each, newest first');
SELECT results_eq($$SELECT text FROM chat_search('pgtap-deep', 'needle', 3)$$,
    $$VALUES ('needle 1005'), ('needle 500'), ('needle 5')$$,
    'a limit spanning the newest 1000 and older ones');
SELECT results_eq($$SELECT text FROM chat_search('pgtap-deep', 'needle -500', 50)$$,
    $$VALUES ('needle 1005'), ('needle 5'), ('needle 3'), ('needle 1')$$,
    'a -word excludes in both');

SELECT * FROM finish();
ROLLBACK;
