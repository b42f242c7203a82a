#!/usr/bin/perl
# 75-limits.t -- rate limits and the room cap (on by default, off with
# RATE_LIMIT=0), and what never reaches a log or the database.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;
use Time::HiRes qw(sleep);

my $s = Stack->new(workers => 1, env => {
    RATE_LIMIT => 1, PGCHAT_SEND_RATE => 2, PGCHAT_SEND_BURST => 5,
    PGCHAT_ROOM_SESSIONS => 3, PGCHAT_JOIN_RATE => '1r/s', PGCHAT_JOIN_BURST => 4,
});

# Per session, in the responder.
my $id = $s->join_nick('fast');
my (%by_status, $raw429);
for my $i (1 .. 10) {
    my ($st, undef, $raw) = $s->post('/send', {id => $id, text => "burst $i"});
    $by_status{$st}++;
    $raw429 = $raw if $st == 429;
}
is($by_status{200}, 5, 'a session may send a burst of 5');
is($by_status{429}, 5, 'the rest of the burst is refused with 429');
is($raw429, '{"error":"Too many messages, slow down"}', 'with a JSON error');
sleep 1.1;    # not a wait: the refill over this time (2 a second) is what is tested
my ($st) = $s->post('/send', {id => $id, text => 'later'});
is($st, 200, 'the bucket refills at the configured rate');
my $stored = $s->sql(q{SELECT count(*) FROM messages WHERE type = 'msg'});
is($stored, 6, 'refused sends stored nothing');

# The room cap: 3 sessions (fast is one).
($st) = $s->get('/join?nick=two');
is($st, 200, 'the second session of a room is accepted');
($st) = $s->get('/join?nick=three');
is($st, 200, 'the third too');
my (undef, undef, $raw) = $s->get('/join?nick=four');
is($raw, '{"error":"Room is full"}', 'the fourth is refused: the room is full');
($st) = $s->get('/join?nick=four&room=other');
is($st, 200, 'another room has room');

# Per client address, in nginx: the join burst (4) is used up by now; in
# 1.5 s at 1r/s one or two joins come back, and the rest of 8 are refused.
sleep 1.5;    # not a wait: the refill is what is tested
my %join;
for my $i (1 .. 8) {
    my ($jst, undef, $jraw) = $s->get("/join?nick=n$i&room=r$i");
    $join{$jst}++;
    $raw429 = $jraw if $jst == 429;
}
ok($join{429} && $join{200}, "nginx limits joins per address ($join{200} accepted, $join{429} refused)");
is($raw429, '{"error":"Too many requests, slow down"}', 'with a JSON error too');

# Searches, per client address in nginx: a burst of 10, then 2 a second.
my %search;
for my $i (1 .. 16) {
    my ($qst, undef, $qraw) = $s->get("/search?q=word$i");
    $search{$qst}++;
    $raw429 = $qraw if $qst == 429;
}
ok(($search{200} // 0) >= 10 && ($search{200} // 0) < 16 && $search{429},
   sprintf('nginx limits searches per address (%d answered, %d refused)',
           $search{200} // 0, $search{429} // 0));
is($raw429, '{"error":"Too many requests, slow down"}', 'with a JSON error');
my ($hist_ok) = grep { ($s->get('/history'))[0] != 200 } 1 .. 20;
ok(!$hist_ok, '20 pages of history right after are all answered');

# Nothing secret or private in the logs or the database.
my $secret_text = 'my secret message ' . int(rand(1e9));
# Stored twice: the second as soon as the session's bucket lets it.
$s->post('/send', {id => $id, text => $secret_text});
Stack::wait_for(10, 'the second secret message to be stored', sub {
    ($s->post('/send', {id => $id, text => $secret_text}))[0] == 200 });
is($s->sql(qq{SELECT count(*) FROM messages WHERE text = '$secret_text'}), 2,
   'the secret message is stored');
my $logs = $s->log('responder') . $s->log('nginx') . $s->log('access');
ok(index($logs, $id) < 0, 'the session token appears in no log');
ok(index($logs, 'secret message') < 0, 'message text appears in no log');
# The token's bytes anywhere in a session's row: in a bytea, as text, or
# as the hex a bytea prints as. Tried first on a row that holds it raw.
my $holds = qq{position(convert_to('$id', 'UTF8') IN s.token_hash) > 0
               OR s::text LIKE '%$id%'
               OR s::text LIKE '%' || encode(convert_to('$id', 'UTF8'), 'hex') || '%'};
is($s->sql(qq{SELECT count(*) FROM (SELECT convert_to('$id', 'UTF8') AS token_hash,
                                           'lobby' AS room) s WHERE $holds}), 1,
   'the check finds a token stored raw');
is($s->sql(qq{SELECT count(*) FROM sessions s WHERE $holds}), 0,
   'the sessions table does not hold the token');
is($s->sql(qq{SELECT count(*) FROM sessions WHERE token_hash = sha256('$id'::bytea)}), 1,
   'it holds its SHA-256');
$s->finish;

# RATE_LIMIT=0 turns every limit off.
my $free = Stack->new(workers => 1, env => {RATE_LIMIT => 0, PGCHAT_SEND_RATE => 1,
                                             PGCHAT_SEND_BURST => 1, PGCHAT_ROOM_SESSIONS => 1});
my $fid = $free->join_nick('free');
my $ok = grep { ($free->post('/send', {id => $fid, text => "m$_"}))[0] == 200 } 1 .. 50;
is($ok, 50, 'with RATE_LIMIT=0 a session may send as fast as it likes');
my $joined = grep { ($free->get("/join?nick=j$_"))[0] == 200 } 1 .. 30;
is($joined, 30, 'and rooms and joins are not capped');
$free->finish;
done_testing;
