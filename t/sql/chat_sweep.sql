-- chat_sweep and chat_sweep_once: sessions idle for longer than the idle
-- time end, each with one part message; a pass is recorded, and forgets the
-- mids older than 24 hours. (How many a single pass takes is 0008's to
-- test; here every pass is well under its limit.)
BEGIN;
SELECT plan(17);
-- The sweep takes every room's sessions: this file counts from none.
DELETE FROM sessions;
DELETE FROM message_mids;

SELECT has_function('chat_sweep', ARRAY['interval'], 'chat_sweep(idle) exists');
SELECT has_function('chat_sweep_once', ARRAY['interval', 'text'],
    'chat_sweep_once(idle, runner) exists');

SELECT is(chat_sweep('60 s'), 0, 'nothing to sweep: 0');

CREATE TEMP TABLE idle (nick text, idle interval);
INSERT INTO idle VALUES ('old1', '61 s'), ('old2', '1 hour'), ('edge', '60 s'),
                        ('new', '59 s'), ('fresh', '0 s');
SELECT is(count(*), 5::bigint, 'five sessions join')
FROM idle WHERE chat_join('t-' || nick, 'pgtap-sweep', nick, '60 s', 0, NULL, 0) = 'joined';
SELECT is(chat_join('t-other', 'pgtap-sweep-2', 'other', '60 s', 0, NULL, 0), 'joined',
    'one joins another room');
UPDATE sessions s SET last_seen = now() - i.idle FROM idle i
WHERE s.room = 'pgtap-sweep' AND s.nick = i.nick;
UPDATE sessions SET last_seen = now() - interval '2 min' WHERE room = 'pgtap-sweep-2';
DELETE FROM messages WHERE room LIKE 'pgtap-sweep%';

SELECT is(chat_sweep('60 s'), 3, 'idle longer than 60 s: 3 sessions end');
SELECT results_eq($$SELECT nick FROM sessions WHERE room = 'pgtap-sweep' ORDER BY nick$$,
    $$VALUES ('edge'), ('fresh'), ('new')$$,
    'those idle for 60 s or less stay');
SELECT results_eq($$
    SELECT room, nick, type FROM messages WHERE room LIKE 'pgtap-sweep%' ORDER BY room, ts
$$, $$VALUES ('pgtap-sweep', 'old2', 'part'), ('pgtap-sweep', 'old1', 'part'),
             ('pgtap-sweep-2', 'other', 'part')$$,
    'one part each, in its room, the longest idle first');
SELECT is(chat_sweep('60 s'), 0, 'a second sweep finds nothing');
SELECT is((SELECT count(*) FROM messages WHERE room LIKE 'pgtap-sweep%'), 3::bigint,
    'and stores nothing');
SELECT is(chat_sweep('10 s'), 2, 'a shorter idle time takes more');

-- chat_sweep_once: the same, recorded, and the mids.
UPDATE sessions SET last_seen = now() - interval '1 day' WHERE room = 'pgtap-sweep';
INSERT INTO message_mids (room, nick, mid, ts, sent_at) VALUES
    ('pgtap-sweep', 'x', 'old', 1, now() - interval '24 hours' - interval '1 s'),
    ('pgtap-sweep', 'x', 'day', 2, now() - interval '24 hours'),
    ('pgtap-sweep', 'x', 'new', 3, now() - interval '24 hours' + interval '1 s');
SELECT is(chat_sweep_once('60 s', 'pgtap-runner'), 1::bigint,
    'a pass returns how many sessions it ended');
SELECT is_empty($$SELECT 1 FROM sessions WHERE room = 'pgtap-sweep'$$,
    'the room is empty');
SELECT results_eq($$
    SELECT task, done, started <= finished FROM maintenance_runs WHERE runner = 'pgtap-runner'
$$, $$VALUES ('sweep', 1::bigint, true)$$, 'the pass is recorded with its runner and count');
SELECT results_eq($$SELECT mid FROM message_mids WHERE room = 'pgtap-sweep' ORDER BY mid$$,
    $$VALUES ('day'), ('new')$$,
    'a pass forgets the mids older than 24 hours, and only those');
SELECT is(chat_sweep_once('60 s', 'pgtap-runner'), 0::bigint,
    'a pass with nothing to do returns 0');
SELECT is((SELECT count(*) FROM maintenance_runs WHERE runner = 'pgtap-runner'), 2::bigint,
    'and is recorded too');

SELECT * FROM finish();
ROLLBACK;
