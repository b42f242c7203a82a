#!/usr/bin/perl
# 79-names-rooms.t -- migration 0008 (issue 20):
#   - nicks that look alike are one nick: a look-alike of a present nick is
#     refused with 400 "Nick in use", through the whole stack;
#   - rooms are not free to create: chat_join's eighth argument caps the
#     rooms one address makes exist in a minute ('wait:N'), and touches no
#     room that exists;
#   - the migration keeps every existing room, message and session (but
#     sessions whose nicks now collide), and runs twice unchanged;
#   - retention deletes the rooms nobody uses, only once their messages are
#     all gone by its own rule;
#   - a pass takes no more than its LIMIT, whatever the plan.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(new_db);
use Test::More;

my $TOP = $Stack::TOP;

# --- look-alike nicks, through the stack ------------------------------------

# [a nick in the room, a newcomer's nick, refused?]
my @pairs = (
    ['Alice', 'AIice', 1],     # capital i for l
    ['Alice', 'A1ice', 1],     # one for l
    ['alice', 'ALICE', 1],     # case
    ['Alice', 'alIce', 1],     # i and I: case, then I for l
    ['bill', 'BIII', 1],
    ['Bob', 'B0B', 1],         # zero for o
    ['0scar', 'Oscar', 1],
    ['marie', 'rnarie', 1],    # rn for m
    ['RNarie', 'Marie', 1],
    ['m0rn', 'MOm', 1],
    ['Alice', 'Alicia', 0],
    ['bob', 'rob', 0],
    ['rn', 'nr', 0],
    ['m', 'n', 0],
    ['o', 'q', 0],
    ['x_y', 'x-y', 0],
    ['ann', 'arm', 0],
    ['l1', 'l1l', 0],
);
{
    my $s = Stack->new(workers => 1);
    my $i = 0;
    for my $p (@pairs) {
        my ($first, $second, $refused) = @$p;
        my $room = 'pair' . $i++;
        my ($st, undef, $raw) = $s->post('/join', {nick => $first, room => $room});
        is($st, 200, "$first joins $room") or diag($raw);
        ($st, undef, $raw) = $s->post('/join', {nick => $second, room => $room});
        if ($refused) {
            is("$st $raw", '400 {"error":"Nick in use"}', "$second is refused beside $first");
        } else {
            is($st, 200, "$second may join beside $first") or diag($raw);
        }
    }
    is($s->sql(q{SELECT count(*) FROM sessions}),
       scalar(@pairs) + scalar(grep { !$_->[2] } @pairs), 'one session per nick let in');
    $s->finish;
}

# --- the migration on a database with data ----------------------------------

my @migrations = sort glob("$TOP/migrations/[0-9]*.sql");
my ($m8) = grep { m{/0008_} } @migrations;
my @before8 = grep { $_ lt $m8 } @migrations;
my $url = Stack::db_url(new_db('rooms', undef));
sub sql { Stack::psql($url, $_[0]) }
sub apply {
    my ($file) = @_;
    my $out = qx{psql -X -q -v ON_ERROR_STOP=1 -d '$url' -c 'SET client_min_messages = warning' -c BEGIN -f '$file' -c COMMIT 2>&1};
    is($? >> 8, 0, 'applies ' . ($file =~ s{.*/}{}r)) or diag($out);
}
apply($_) for @before8;

# A room with history and two sessions whose nicks fold alike, and another.
sql(q{SELECT chat_join('t-old', 'old', 'Bob', interval '60 s', 0, '10.1.1.1', 0);
      SELECT chat_join('t-old2', 'old', 'B0B', interval '60 s', 0, '10.1.1.1', 0);
      SELECT chat_join('t-zed', 'zed', 'zed', interval '60 s', 0, '10.1.1.1', 0);
      SELECT chat_post('old', array_fill('Bob'::text, ARRAY[50]),
                       array_fill('msg'::text, ARRAY[50]),
                       ARRAY(SELECT 'm' || i FROM generate_series(1, 50) i));
      UPDATE sessions SET joined_at = joined_at - interval '1 s' WHERE nick = 'Bob'});
my $digest = q{SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
    SELECT concat_ws('|', room, last_ts, last_seq) x FROM rooms
    UNION ALL SELECT concat_ws('|', room, seq, ts, nick, type, text) FROM messages
    UNION ALL SELECT concat_ws('|', room, nick, addr, token_hash) FROM sessions
        WHERE nick <> 'B0B') d};
my $was = sql($digest);
my $ts = sql(q{SELECT last_ts FROM rooms WHERE room = 'old'});
apply($m8);
is(sql(q{SELECT string_agg(nick, ',' ORDER BY nick) FROM sessions}), 'Bob,zed',
   'of two present nicks that fold alike the newer session is ended');
is(sql(qq{SELECT type || ' ' || nick FROM messages WHERE room = 'old' AND ts > $ts}),
   'part B0B', 'with its part message');
sql(q{DELETE FROM messages WHERE nick = 'B0B' AND type = 'part';
      UPDATE rooms SET last_ts = } . $ts . q{, last_seq = last_seq - 1 WHERE room = 'old'});
is(sql($digest), $was, 'every other room, message and session is as it was');
is(sql(q{SELECT count(*) FROM rooms WHERE created_by IS NOT NULL OR created_at IS NOT NULL}),
   0, 'rooms made before it have no maker');
apply($m8);
is(sql($digest), $was, 'applied twice, it changes nothing');

# --- rooms are not free to create ---------------------------------------------

# chat_join with the room cap; its answer.
sub join_as {
    my ($token, $room, $nick, $addr, $per_minute, $before) = @_;
    my $args = "'$token', '$room', '$nick', interval '60 s', 0, '$addr', 0"
        . (defined $per_minute ? ", $per_minute" : '');
    return sql(($before // '') . "SELECT chat_join($args)");
}

my $a = '192.0.2.1';
is(join_as("c$_", "new$_", 'ann', $a, 3), 'joined', "a join makes room new$_ exist (cap 3)")
    for 1 .. 3;
is(sql(q{SELECT count(*) FROM rooms WHERE created_by = '192.0.2.1'
         AND created_at > now() - interval '1 minute'}), 3, 'each recorded with its maker');
# The wait, and the seconds until new1 is a minute old, at the same now().
is(sql(q{SELECT chat_join('c4', 'new4', 'ann', interval '60 s', 0, '192.0.2.1', 0, 3)
        || ' ' || ceil(extract(epoch FROM (SELECT created_at FROM rooms WHERE room = 'new1')
                                          + interval '1 minute' - now()))}) =~ s/^wait:(\d+) \1$/ok/r,
   'ok', 'a fourth room in the minute is refused, with the wait until the oldest is a minute old');
is(sql(q{SELECT count(*) FROM rooms WHERE room = 'new4'}) .
   sql(q{SELECT count(*) FROM sessions WHERE room = 'new4'}), '00',
   'and neither the room nor a session exists');
is(join_as('c5', 'new1', 'bea', $a, 3), 'joined', 'a room that exists may be joined all the same');
is(join_as('c6', 'old', 'bea', $a, 3), 'joined', 'and one made before the cap');
is(join_as('c7', 'new4', 'ann', '192.0.2.2', 3), 'joined', 'another address may make it');
is(join_as('c8', 'new5', 'ann', $a, 0), 'joined', 'with a cap of 0 there is none');
is(join_as('c9', 'new6', 'ann', $a), 'joined', 'nor with the seven-argument form');
is(join_as('c10', 'new7', 'ann', 'unix:', 1) . join_as('c11', 'new8', 'ann', 'unix:', 1),
   'joinedjoined', 'nor for an address that is no IP address');
# The cap counts new1..new3, new5, new6 now: 5 in the minute. Move all but
# new3 a minute back, new3 50 s back: one left in the window, the cap is 1.
my $back = q{UPDATE rooms SET created_at = now() - interval '61 s'
             WHERE created_by = '192.0.2.1' AND room <> 'new3';
             UPDATE rooms SET created_at = now() - interval '50 s' WHERE room = 'new3';};
is(join_as('c12', 'new9', 'ann', $a, 1, $back), 'wait:10',
   'the wait is until the newest that counts is a minute old (10 s)');
is(join_as('c13', 'new9', 'ann', $a, 2, $back), 'joined', 'one more allowed: joined');
is(join_as('c14', 'new10', 'ann', $a, 2, q{
           UPDATE rooms SET created_at = now() - interval '50 s' WHERE room = 'new3';
           UPDATE rooms SET created_at = now() - interval '5 s' WHERE room = 'new9';}),
   'wait:10', 'the next is refused again (both sides of the cap)');

# --- retention deletes the rooms nobody uses ----------------------------------

my $day = "86400000::bigint";
sql(qq{
    -- Rooms of 40-day-old messages: retention of 30 days deletes them all.
    SELECT chat_post(r, ARRAY['x', 'y'], ARRAY['msg', 'msg'], ARRAY['a', 'b'])
    FROM unnest(ARRAY['gone1', 'gone2', 'joined', 'lately']) r;
    UPDATE messages SET ts = ts - 40 * $day
    WHERE room IN ('gone1', 'gone2', 'joined', 'lately');
    UPDATE rooms SET last_ts = last_ts - 40 * $day
    WHERE room IN ('gone1', 'gone2', 'joined');
    -- 'lately' was written to an hour ago (its messages are old all the same).
    UPDATE rooms SET last_ts = last_ts - 3600000 WHERE room = 'lately';
    INSERT INTO message_mids (room, nick, mid, ts, sent_at)
    VALUES ('gone2', 'x', 'm1', 1, now() - interval '40 days');
    -- 'recent': idle for two days, its messages kept by retention.
    SELECT chat_post('recent', ARRAY['x'], ARRAY['msg'], ARRAY['c']);
    UPDATE messages SET ts = ts - 2 * $day WHERE room = 'recent';
    UPDATE rooms SET last_ts = last_ts - 2 * $day WHERE room = 'recent';
});
is(join_as('cj', 'joined', 'stay', '192.0.2.9'), 'joined', 'someone is joined to one of them');
sql(qq{UPDATE rooms SET last_ts = last_ts - 40 * $day WHERE room = 'joined';
       UPDATE messages SET ts = ts - 40 * $day WHERE room = 'joined'});
my $others = sql(q{SELECT string_agg(room, ',' ORDER BY room) FROM rooms
                   WHERE room NOT IN ('gone1', 'gone2')});
is(sql(q{SELECT chat_expire_once(30, 'test')}), 9, 'a pass of retention deletes the 9 old messages');
is(sql(q{SELECT count(*) FROM rooms WHERE room IN ('gone1', 'gone2')}), 0,
   'and the rooms nobody is joined to, idle for a day, with no message left');
is(sql(q{SELECT count(*) FROM expired WHERE room IN ('gone1', 'gone2')})
   . sql(q{SELECT count(*) FROM message_mids WHERE room = 'gone2'}), '00',
   'with their cut and their mids');
is(sql(q{SELECT string_agg(room, ',' ORDER BY room) FROM rooms}), $others,
   'every other room is kept: joined, written to lately, or with messages retention keeps');
is(sql(q{SELECT count(*) FROM messages WHERE room = 'recent'}), 1, 'and so are those messages');
is(sql(q{SELECT done FROM maintenance_runs WHERE task = 'rooms' ORDER BY finished DESC LIMIT 1}),
   2, 'the pass over rooms is recorded');
is(join_as('cg', 'gone1', 'ann', '192.0.2.3', 1), 'joined', 'a deleted room can be made again');
is(sql(q{SELECT last_seq || ' ' || host(created_by) FROM rooms WHERE room = 'gone1'}), '1 192.0.2.3',
   'afresh, by its new maker');

# --- a pass takes no more than its LIMIT ---------------------------------------

# A plan that runs "IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)" once per
# outer row: every rescan skips what the statement deleted and takes n more.
my $nested = 'SET enable_hashjoin = off; SET enable_mergejoin = off; '
    . 'SET enable_hashagg = off; SET enable_sort = off; SET enable_material = off; ';
sql(q{DELETE FROM sessions;
      INSERT INTO sessions (token_hash, room, nick, last_seen)
      SELECT chat_token_hash('idle' || i), 'idle' || (i % 7), 'n' || i,
             now() - interval '1 hour'
      FROM generate_series(1, 1500) i;
      INSERT INTO message_mids (room, nick, mid, ts, sent_at)
      SELECT 'idle', 'n', 'mid' || i, i, now() - interval '2 days'
      FROM generate_series(1, 12000) i;
      ANALYZE sessions; ANALYZE message_mids});
cmp_ok(sql($nested . q{BEGIN;
    WITH d AS (DELETE FROM sessions WHERE token_hash IN (
        SELECT token_hash FROM sessions WHERE last_seen < now() - interval '60 s'
        ORDER BY token_hash FOR UPDATE SKIP LOCKED LIMIT 1000) RETURNING 1)
    SELECT count(*) FROM d; ROLLBACK}), '>', 1000,
    'under such a plan the old statement deletes more than its LIMIT of 1000');
is(sql($nested . q{SELECT chat_sweep_once(interval '60 s', 'test')}), 1000,
   'a pass of the sweep ends exactly 1000 idle sessions');
is(sql(q{SELECT count(*) FROM sessions}), 500, 'and leaves the other 500');
is(sql(q{SELECT count(*) FROM message_mids WHERE room = 'idle'}), 2000,
   'and forgets exactly 10000 old mids of 12000');
is(sql($nested . q{SELECT chat_sweep_once(interval '60 s', 'test')}), 500,
   'the next pass ends the rest');

sql(qq{INSERT INTO rooms (room, last_ts, last_seq)
       SELECT 'empty' || i, 0, 0 FROM generate_series(1, 1200) i});
sql($nested . q{SELECT chat_expire_once(30, 'test')});
is(sql(q{SELECT count(*) FROM rooms WHERE room LIKE 'empty%'}), 200,
   'a pass of retention deletes exactly 1000 of 1200 unused rooms');

done_testing;
