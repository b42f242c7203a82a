-- What an operator reads: the views chat_history and chat_online, and
-- chat_maintenance_ran, which records a pass and forgets those older than
-- a day.
BEGIN;
SELECT plan(11);

SELECT has_view('chat_history', 'the view chat_history exists');
SELECT has_view('chat_online', 'the view chat_online exists');
SELECT has_function('chat_maintenance_ran',
    ARRAY['text', 'text', 'timestamp with time zone', 'bigint'],
    'chat_maintenance_ran(task, runner, started, done) exists');

SELECT is(chat_join('t-op', 'pgtap-op', 'op', '60 s', 0, NULL, 0), 'joined', 'op joins');
SELECT cmp_ok(chat_post('pgtap-op', ARRAY['op'], ARRAY['msg'], ARRAY['hello']), '>', 0::bigint,
    'op says hello');
SELECT results_eq($$
    SELECT nick, type, text, time = to_timestamp(ts / 1000.0)
    FROM chat_history WHERE room = 'pgtap-op' ORDER BY ts
$$, $$VALUES ('op', 'join', NULL::text, true), ('op', 'msg', 'hello', true)$$,
    'chat_history has every message with its time');
UPDATE sessions SET last_seen = now() - interval '42.7 s' WHERE room = 'pgtap-op';
SELECT results_eq($$
    SELECT nick, idle_seconds, joined_at = now() FROM chat_online WHERE room = 'pgtap-op'
$$, $$VALUES ('op', 42, true)$$, 'chat_online has every session with its idle seconds');

DELETE FROM maintenance_runs;
SELECT lives_ok($$SELECT chat_maintenance_ran('sweep', 'host:1', now() - interval '2 s', 7)$$,
    'a pass is recorded');
SELECT results_eq($$
    SELECT task, runner, started, done, finished >= started FROM maintenance_runs
$$, $$VALUES ('sweep', 'host:1', now() - interval '2 s', 7::bigint, true)$$,
    'with its task, runner, start, count and end');
INSERT INTO maintenance_runs VALUES
    ('sweep', 'old', now() - interval '2 days', now() - interval '1 day' - interval '1 s', 1),
    ('sweep', 'day', now() - interval '2 days', now() - interval '1 day' + interval '1 s', 1);
SELECT lives_ok($$SELECT chat_maintenance_ran('expire', 'host:1', now(), 0)$$,
    'another pass is recorded');
SELECT results_eq($$SELECT runner, task FROM maintenance_runs ORDER BY finished$$,
    $$VALUES ('day', 'sweep'), ('host:1', 'sweep'), ('host:1', 'expire')$$,
    'passes that ended more than a day ago are forgotten, the others kept');

SELECT * FROM finish();
ROLLBACK;
