-- 0008_names_rooms.sql -- nicks that look alike are one nick, rooms are not
-- free to create, rooms nobody uses are deleted by retention, and the
-- passes that claim rows with LIMIT ... SKIP LOCKED take no more than their
-- limit. Safe to run twice.

-- --- nicks that look alike ------------------------------------------------
-- "AIice" (capital i) beside "Alice" reads as one person, as "Admin" beside
-- "admin" did (0004). Nicks are ASCII, so the look-alikes are few: the
-- nick is lower-cased, then i and 1 become l (capital I is lower-case l on
-- most screens, and case is already folded, so i, I, l, L and 1 are one
-- letter), 0 becomes o, and rn becomes m. Two nicks with the same fold are
-- one nick in a room.
CREATE OR REPLACE FUNCTION chat_nick_fold(p_nick text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT replace(translate(lower(p_nick), 'i10', 'llo'), 'rn', 'm')
$$;

-- Sessions that already collide under the fold are ended, the newest
-- first, each with its part message (as 0004 did for case).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT s.token_hash, s.room, s.nick
        FROM sessions s
        WHERE EXISTS (SELECT 1 FROM sessions o
                      WHERE o.room = s.room
                        AND chat_nick_fold(o.nick) = chat_nick_fold(s.nick)
                        AND (o.joined_at, o.token_hash) < (s.joined_at, s.token_hash))
    LOOP
        DELETE FROM sessions WHERE token_hash = r.token_hash;
        PERFORM chat_post(r.room, ARRAY[r.nick], ARRAY['part'], ARRAY[NULL::text]);
    END LOOP;
END
$$;

CREATE UNIQUE INDEX IF NOT EXISTS sessions_room_nick_fold
    ON sessions (room, chat_nick_fold(nick));
DROP INDEX IF EXISTS sessions_room_lower_nick;

-- --- who made a room, and when --------------------------------------------
-- Set by the join that made the room exist; NULL for rooms made before this
-- migration or by an address that is no IP address (a unix socket).
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS created_by inet;
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS created_at timestamptz;
CREATE INDEX IF NOT EXISTS rooms_created_by ON rooms (created_by, created_at)
    WHERE created_by IS NOT NULL;
-- Retention finds the rooms idle for a day without reading every room.
CREATE INDEX IF NOT EXISTS rooms_last_ts ON rooms (last_ts);

-- p_addr as an address, NULL when it is none (REMOTE_ADDR is text).
CREATE OR REPLACE FUNCTION chat_inet(p_addr text) RETURNS inet
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    RETURN p_addr::inet;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN NULL;
END
$$;

-- Seconds until p_addr may make one more room exist, 0 when it may now: it
-- has made p_per_minute rooms in the last minute, and the wait is until the
-- p_per_minute-th newest of them is a minute old (1..60).
CREATE OR REPLACE FUNCTION chat_room_wait(p_addr inet, p_per_minute int)
RETURNS int
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT greatest(1, least(60, ceil(extract(epoch FROM
                    r.created_at + interval '1 minute' - now()))::int))
         FROM rooms r
         WHERE r.created_by = p_addr
           AND r.created_at > now() - interval '1 minute'
         ORDER BY r.created_at DESC
         OFFSET p_per_minute - 1 LIMIT 1),
        0)
$$;

-- Starts a session: 'joined', or 'taken' (a nick with the same fold has a
-- session in the room), 'full' (the room has p_cap sessions), 'addr_full'
-- (p_addr has p_addr_cap of them), or 'wait:N' when the join would make
-- the room exist and p_addr has made p_rooms_per_minute rooms in the last
-- minute: N seconds (1..60) until it may make one more. A cap of 0 is no
-- cap. Joins of one room are serialised by an advisory lock, and the rooms
-- an address makes by another, so every cap is exact.
CREATE OR REPLACE FUNCTION chat_join(p_token text, p_room text, p_nick text,
                                     p_idle interval, p_cap int, p_addr text,
                                     p_addr_cap int, p_rooms_per_minute int)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    stale text;
    fresh boolean;
    maker inet;
    wait  int;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pgchat join ' || p_room));

    fresh := NOT EXISTS (SELECT 1 FROM rooms WHERE room = p_room);
    IF fresh THEN
        maker := chat_inet(p_addr);
        IF p_rooms_per_minute > 0 AND maker IS NOT NULL THEN
            PERFORM pg_advisory_xact_lock(hashtext('pgchat rooms ' || host(maker)));
            wait := chat_room_wait(maker, p_rooms_per_minute);
            IF wait > 0 THEN
                RETURN 'wait:' || wait;
            END IF;
        END IF;
    END IF;

    DELETE FROM sessions
    WHERE room = p_room AND chat_nick_fold(nick) = chat_nick_fold(p_nick)
      AND last_seen < now() - p_idle
    RETURNING nick INTO stale;
    IF stale IS NOT NULL THEN
        PERFORM chat_post(p_room, ARRAY[stale], ARRAY['part'], ARRAY[NULL::text]);
    END IF;

    IF EXISTS (SELECT 1 FROM sessions
               WHERE room = p_room
                 AND chat_nick_fold(nick) = chat_nick_fold(p_nick)) THEN
        RETURN 'taken';
    END IF;
    IF p_cap > 0 AND (SELECT count(*) FROM sessions WHERE room = p_room) >= p_cap THEN
        RETURN 'full';
    END IF;
    IF p_addr_cap > 0 AND p_addr IS NOT NULL AND
       (SELECT count(*) FROM sessions
        WHERE room = p_room AND addr = p_addr) >= p_addr_cap THEN
        RETURN 'addr_full';
    END IF;

    INSERT INTO sessions (token_hash, room, nick, addr)
    VALUES (chat_token_hash(p_token), p_room, p_nick, p_addr)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'taken';
    END IF;
    PERFORM chat_post(p_room, ARRAY[p_nick], ARRAY['join'], ARRAY[NULL::text]);
    IF fresh THEN
        UPDATE rooms SET created_by = maker, created_at = now()
        WHERE room = p_room;
    END IF;
    RETURN 'joined';
END
$$;

-- The seven-argument form the responder called before: no room cap.
CREATE OR REPLACE FUNCTION chat_join(p_token text, p_room text, p_nick text,
                                     p_idle interval, p_cap int, p_addr text,
                                     p_addr_cap int)
RETURNS text
LANGUAGE sql AS $$
    SELECT chat_join(p_token, p_room, p_nick, p_idle, p_cap, p_addr,
                     p_addr_cap, 0)
$$;

-- --- passes that take no more than their limit ---------------------------
-- "DELETE ... WHERE k IN (SELECT k ... LIMIT n FOR UPDATE SKIP LOCKED)" may
-- delete more than n: in a plan that runs the subquery again for each outer
-- row, the rows this very statement has deleted are skipped as locked, and
-- the LIMIT takes n others each time (1374 of 1500 idle sessions in one
-- pass of a limit of 1000, with a nested loop). So the keys are first
-- collected into an array, once, and the DELETE takes exactly those.

-- 0001's chat_sweep, taking at most 1000 sessions a pass.
CREATE OR REPLACE FUNCTION chat_sweep(p_idle interval) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    r     record;
    n     int := 0;
    picks bytea[];
BEGIN
    SELECT array_agg(token_hash) INTO picks
    FROM (SELECT token_hash FROM sessions
          WHERE last_seen < now() - p_idle
          ORDER BY token_hash
          FOR UPDATE SKIP LOCKED
          LIMIT 1000) p;
    IF picks IS NULL THEN
        RETURN 0;
    END IF;
    FOR r IN
        WITH gone AS (
            DELETE FROM sessions
            WHERE token_hash = ANY (picks)
            RETURNING room, nick, last_seen
        )
        SELECT room, array_agg(nick ORDER BY last_seen, nick) AS nicks
        FROM gone GROUP BY room ORDER BY room
    LOOP
        PERFORM chat_post(r.room, r.nicks,
                          array_fill('part'::text, ARRAY[cardinality(r.nicks)]),
                          array_fill(NULL::text, ARRAY[cardinality(r.nicks)]));
        n := n + cardinality(r.nicks);
    END LOOP;
    RETURN n;
END
$$;

-- 0005's chat_sweep_once, forgetting at most 10000 mids a pass.
CREATE OR REPLACE FUNCTION chat_sweep_once(p_idle interval, p_runner text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    n  bigint;
    picks tid[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('pgchat maintenance'), 1) THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('lock_timeout', '1s', true);
    n := chat_sweep(p_idle);
    SELECT array_agg(ctid) INTO picks
    FROM (SELECT ctid FROM message_mids
          WHERE sent_at < now() - interval '24 hours'
          ORDER BY sent_at LIMIT 10000
          FOR UPDATE SKIP LOCKED) p;
    DELETE FROM message_mids WHERE ctid = ANY (picks);
    PERFORM chat_maintenance_ran('sweep', p_runner, t0, n);
    RETURN n;
END
$$;

-- --- rooms nobody uses -----------------------------------------------------
-- A pass of retention also deletes the rooms that nobody is joined to,
-- that nothing was written to for a day, and whose messages retention has
-- all deleted (their messages go only by retention's rule; a room with
-- messages left keeps its row, which numbers them), at most 1000 a pass,
-- each with what it kept besides: its cut in "expired" and its mids. A room
-- deleted this way is as if it had never been: a join makes it afresh.
ALTER TABLE maintenance_runs DROP CONSTRAINT IF EXISTS maintenance_runs_task_check;
ALTER TABLE maintenance_runs ADD CONSTRAINT maintenance_runs_task_check
    CHECK (task IN ('sweep', 'expire', 'rooms'));

-- One pass of retention (0004's), then of the rooms nobody uses; the pass
-- over rooms is recorded in maintenance_runs as task 'rooms'. Returns the
-- messages deleted, or NULL when another runner holds the task.
CREATE OR REPLACE FUNCTION chat_expire_once(p_days int, p_runner text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    t0     timestamptz := clock_timestamp();
    cutoff bigint := floor(extract(epoch FROM now() - make_interval(days => p_days)) * 1000);
    idle   bigint := floor(extract(epoch FROM now() - interval '1 day') * 1000);
    budget bigint := 10000;
    n      bigint := 0;
    k      bigint;
    top    bigint;
    r      record;
    picks  bigint[];
    gone   text[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('pgchat maintenance'), 2) THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('lock_timeout', '1s', true);
    FOR r IN SELECT room FROM rooms ORDER BY room LOOP
        EXIT WHEN budget <= 0;
        SELECT array_agg(ts) INTO picks
        FROM (SELECT ts FROM messages
              WHERE room = r.room AND ts < cutoff
              ORDER BY ts LIMIT budget) p;
        CONTINUE WHEN picks IS NULL;
        WITH deleted AS (
            DELETE FROM messages m
            WHERE m.room = r.room AND m.ts = ANY (picks)
            RETURNING m.ts
        )
        SELECT count(*), max(ts) INTO k, top FROM deleted;
        IF k > 0 THEN
            INSERT INTO expired AS e (room, ts) VALUES (r.room, top)
            ON CONFLICT (room) DO UPDATE SET ts = greatest(e.ts, excluded.ts);
            n := n + k;
            budget := budget - k;
        END IF;
    END LOOP;
    PERFORM chat_maintenance_ran('expire', p_runner, t0, n);

    t0 := clock_timestamp();
    SELECT array_agg(room) INTO gone
    FROM (SELECT o.room FROM rooms o
          WHERE o.last_ts < idle
            AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.room = o.room)
            AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.room = o.room)
          ORDER BY o.last_ts
          LIMIT 1000
          FOR UPDATE SKIP LOCKED) p;
    IF gone IS NOT NULL THEN
        DELETE FROM rooms WHERE room = ANY (gone);
        DELETE FROM expired WHERE room = ANY (gone);
        DELETE FROM message_mids WHERE room = ANY (gone);
    END IF;
    PERFORM chat_maintenance_ran('rooms', p_runner, t0, coalesce(cardinality(gone), 0));
    RETURN n;
END
$$;
