-- chat_send's hot path (0017): the token's hash is inlined into the query
-- that calls it, a batch without mids skips the mid statements, and
-- chat_post builds its notification from the rows it stored. Answers,
-- rows and payloads are those of 0005 and 0009.
BEGIN;
SELECT plan(15);

-- A plan as text, to see what the planner made of a call.
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    line text;
    out  text := '';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP
        out := out || line || E'\n';
    END LOOP;
    RETURN out;
END
$$;

SELECT is((SELECT provolatile FROM pg_proc
           WHERE oid = 'chat_token_hash(text)'::regprocedure), 's'::"char",
    'chat_token_hash is STABLE, as convert_to is');
SELECT matches(pg_temp.plan_of(
        $$SELECT chat_token_hash(t) FROM unnest(ARRAY['a', 'b']) t$$),
    'sha256\(convert_to\(',
    'and is inlined: the calling query computes sha256 itself');
SELECT is(chat_token_hash('abc'),
    '\xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'::bytea,
    'the hash is still the token''s SHA-256');

-- Every notification of this transaction, in order, instead of sending it
-- (a rolled-back transaction sends none): an unqualified pg_notify in
-- chat_post finds this one first.
CREATE TEMP TABLE sent_notes (n serial, channel text, payload text);
CREATE FUNCTION public.pg_notify(channel text, payload text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO sent_notes (channel, payload) VALUES (channel, payload)
$$;
SET LOCAL search_path = public, pg_catalog;

SELECT is(chat_join('t-hp-ann', 'pgtap-hp-a', 'ann', '60 s', 0, NULL, 0), 'joined', 'ann joins room a');
SELECT is(chat_join('t-hp-ben', 'pgtap-hp-a', 'ben', '60 s', 0, NULL, 0), 'joined', 'ben joins room a');
SELECT is(chat_join('t-hp-cat', 'pgtap-hp-b', 'cat', '60 s', 0, NULL, 0), 'joined', 'cat joins room b');
TRUNCATE sent_notes;

-- Room a without a mid (the short path), room b with one (the long path),
-- an unknown token and a token in the wrong room, in one batch.
CREATE TEMP TABLE s1 AS
SELECT * FROM chat_send(
    ARRAY['t-hp-ann', 't-hp-cat', 't-hp-nobody', 't-hp-ben', 't-hp-cat', 't-hp-ann'],
    ARRAY['pgtap-hp-a', 'pgtap-hp-b', 'pgtap-hp-a', 'pgtap-hp-a', 'pgtap-hp-a',
          'pgtap-hp-a'],
    ARRAY['a1', 'b1', 'x', 'a2 "quoted"', 'not cat''s room', 'a3'],
    ARRAY[NULL, 'm-b1', NULL, NULL, NULL, NULL]);
SELECT set_eq($$SELECT pos FROM s1$$, ARRAY[1, 2, 4, 6],
    'the sends of known tokens in their own rooms are answered, on both paths');
SELECT set_eq($$SELECT pos, ts FROM s1$$,
    $$SELECT CASE text WHEN 'a1' THEN 1 WHEN 'b1' THEN 2
                       WHEN 'a2 "quoted"' THEN 4 ELSE 6 END, ts
      FROM messages WHERE room LIKE 'pgtap-hp-%' AND type = 'msg'$$,
    'each answer is its stored message''s timestamp');
SELECT results_eq($$
    SELECT nick, text, mid FROM messages WHERE room = 'pgtap-hp-a' AND type = 'msg'
    ORDER BY ts
$$, $$ VALUES ('ann', 'a1', NULL::text), ('ben', 'a2 "quoted"', NULL), ('ann', 'a3', NULL) $$,
    'room a has its sends in batch order, under their nicks, without mids');
SELECT results_eq($$SELECT nick, mid FROM message_mids WHERE room LIKE 'pgtap-hp-%'$$,
    $$VALUES ('cat', 'm-b1')$$, 'only room b''s mid is claimed');

-- The payloads, as 0009 wrote them: "ROOM HEAD PREV JSON".
SELECT results_eq($$SELECT channel, payload FROM sent_notes ORDER BY n$$,
    $$SELECT 'pgchat', m.room || ' ' || max(m.ts) || ' ' || r.prev || ' '
             || json_agg(json_build_array(m.ts, m.nick, m.type, m.text, m.mid)
                         ORDER BY m.ts)
      FROM messages m
      JOIN (SELECT room, max(ts) AS prev FROM messages
            WHERE room LIKE 'pgtap-hp-%' AND type = 'join' GROUP BY room) r
        ON r.room = m.room
      WHERE m.room LIKE 'pgtap-hp-%' AND m.type = 'msg'
      GROUP BY m.room, r.prev ORDER BY m.room$$,
    'one notification a room, with the batch as before, its head and the head before it');

-- A batch whose texts reach 8000 bytes: the head alone.
TRUNCATE sent_notes;
SELECT is((SELECT count(*) FROM chat_send(ARRAY['t-hp-ann', 't-hp-ben'],
                                          ARRAY['pgtap-hp-a', 'pgtap-hp-a'],
                                          ARRAY[repeat('x ', 2000), repeat('y ', 2000)],
                                          ARRAY[NULL::text, NULL])), 2::bigint,
    'a batch of 8000 bytes of text is stored');
SELECT results_eq($$SELECT payload FROM sent_notes$$,
    $$SELECT 'pgtap-hp-a ' || max(ts) FROM messages WHERE room = 'pgtap-hp-a'$$,
    'and notified with its room and head only');
TRUNCATE sent_notes;
SELECT is((SELECT count(*) FROM chat_send(ARRAY['t-hp-ann'], ARRAY['pgtap-hp-a'],
                                          ARRAY[repeat('z ', 3999) || 'z'], ARRAY[NULL::text])),
          1::bigint, 'a send of 7999 bytes is stored');
SELECT results_eq($$SELECT payload FROM sent_notes$$,
    $$SELECT 'pgtap-hp-a ' || max(ts) FROM messages WHERE room = 'pgtap-hp-a'$$,
    'and, its payload past 7999 bytes with the rest, notified with the head only');

SELECT * FROM finish();
ROLLBACK;
