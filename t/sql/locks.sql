-- Two transactions at once, through a second session (dblink to the string
-- in the setting pgchat.dblink, which t/lib/run-tests sets):
-- - maintenance runs on one runner at a time: a pass of a task another
--   runner holds returns NULL, and the task is free again when that
--   runner's transaction ends or its connection is lost;
-- - the sweep and keep-alives skip a session another transaction holds
--   (a send or a keep-alive in flight) instead of waiting for it.
-- Every wait is bounded by lock_timeout, so a bug fails rather than hangs.
-- The session row part B needs is committed by the second session, and
-- deleted by it after the ROLLBACK, and before the BEGIN, in case a run
-- that failed half-way left it.
DELETE FROM sessions WHERE room = 'pgtap-locks';
BEGIN;
SELECT plan(28);
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE FUNCTION pg_temp.other(q text) RETURNS bigint
LANGUAGE sql AS $$ SELECT v FROM dblink('other', q) AS t(v bigint) $$;
-- Waits, for up to 30 s, until backend p has ended.
CREATE FUNCTION pg_temp.gone(p int) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 600 LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = p) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
    RETURN false;
END
$$;

SELECT is(dblink_connect_u('other', current_setting('pgchat.dblink')), 'OK',
    'a second session connects');
SELECT is(dblink_exec('other', 'SET lock_timeout = ''5s'''), 'SET', 'with a bound on its waits');

-- A: one runner at a time.
SELECT is(dblink_connect_u('third', current_setting('pgchat.dblink')), 'OK',
    'a third session connects');
CREATE TEMP TABLE third AS
SELECT v AS pid FROM dblink('third', 'SELECT pg_backend_pid()') AS t(v int);
SELECT is(dblink_exec('third', 'BEGIN'), 'BEGIN', 'it begins');
SELECT is(v, 0::bigint, 'it holds a retention pass')
FROM dblink('third', $$SELECT chat_expire_once(36500, 'third')$$) AS t(v bigint);
SELECT is(chat_expire_once(36500, 'pgtap'), NULL,
    'a retention pass meanwhile returns NULL');
SELECT is_empty($$SELECT 1 FROM maintenance_runs WHERE runner = 'pgtap'$$,
    'and is not recorded');
SELECT is(dblink_disconnect('third'), 'OK', 'the third session hangs up mid-pass');
SELECT ok(pg_temp.gone(pid), 'its backend ends') FROM third;
SELECT is(chat_expire_once(36500, 'pgtap'), 0::bigint,
    'then a retention pass runs: the task was the lost transaction''s');

SELECT is(dblink_exec('other', 'BEGIN'), 'BEGIN', 'the other runner begins');
SELECT is(pg_temp.other($$SELECT chat_sweep_once('60 s', 'other')$$), 0::bigint,
    'the other runner holds a sweep pass');
SELECT is(chat_sweep_once('60 s', 'pgtap'), NULL,
    'a sweep pass meanwhile returns NULL');
SELECT is(pg_temp.other($$SELECT chat_expire_once(36500, 'other')$$), NULL,
    'the other runner''s retention pass returns NULL while this one holds it');
SELECT is(dblink_exec('other', 'ROLLBACK'), 'ROLLBACK', 'the other runner''s transaction ends');
SELECT is(chat_sweep_once('60 s', 'pgtap'), 0::bigint, 'then a sweep pass runs');

-- B: rows another transaction holds are skipped, not waited for.
SELECT is(dblink_exec('other', $$
    INSERT INTO sessions (token_hash, room, nick, last_seen)
    VALUES (chat_token_hash('t-locked'), 'pgtap-locks', 'locked', now() - interval '1 hour')
$$), 'INSERT 0 1', 'the other session commits a session idle for an hour');
SELECT is(dblink_exec('other', 'BEGIN'), 'BEGIN', 'and begins');
SELECT is(pg_temp.other($$SELECT chat_touch(ARRAY['t-locked'])$$), 1::bigint,
    'a keep-alive of that session is in flight');
SELECT is(chat_touch(ARRAY['t-locked']), 0, 'a keep-alive of it meanwhile skips it');
SELECT is(chat_sweep('60 s'), 0, 'a sweep meanwhile skips it');
SELECT is(dblink_exec('other', 'ROLLBACK'), 'ROLLBACK', 'the keep-alive is given up');
SELECT is(dblink_exec('other', 'BEGIN'), 'BEGIN', 'the other session begins again');
SELECT is(pg_temp.other($$
    SELECT count(*) FROM chat_send(ARRAY['t-locked'], ARRAY['pgtap-locks'],
                                   ARRAY['in flight'], ARRAY[NULL])
$$), 1::bigint, 'a send of that session is in flight');
SELECT is(chat_sweep('60 s'), 0, 'a sweep meanwhile skips the session');
SELECT is(dblink_exec('other', 'ROLLBACK'), 'ROLLBACK', 'the send is given up');
-- This transaction now deletes the row: the other session may not touch it
-- before the ROLLBACK below.
SELECT is(chat_sweep('60 s'), 1, 'then the sweep takes the session');
SELECT results_eq($$SELECT nick, type FROM messages WHERE room = 'pgtap-locks'$$,
    $$VALUES ('locked', 'part')$$, 'with its part, and nothing of the send given up');

SELECT * FROM finish();
ROLLBACK;

-- Outside the plan: the row part B committed.
SELECT dblink_exec('other', $$DELETE FROM sessions WHERE room = 'pgtap-locks'$$);
SELECT dblink_disconnect('other');
