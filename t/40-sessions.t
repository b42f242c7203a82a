#!/usr/bin/perl
# 40-sessions.t -- a session idle for longer than the timeout ends with
# exactly one part message, even with several workers on two responders all
# sweeping; polling /recv with the id keeps a session alive.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;
use Time::HiRes qw(sleep time);

my $timeout = 3;
my %env = (PGCHAT_SESSION_TIMEOUT => $timeout, PGCHAT_SWEEP_INTERVAL => 0.2,
           PGCHAT_RECV_TIMEOUT => 0.5);
my $a = Stack->new(workers => 2, env => \%env);
my $b = Stack->new(workers => 2, env => \%env, db => $a->{db});

# The session's last_seen is its join's transaction start, which is after
# this clock reading (the database and the test share the host's clock).
my $joining = int(time * 1000);
my $idle = $a->join_nick('idle');
my $active = $a->join_nick('active');

# The active user keeps polling (through the other responder, too) for
# more than twice the timeout: that time is what is tested.
my $t0 = time;
my $since = 0;
my $i = 0;
while (time - $t0 < 2 * $timeout + 1) {
    my $stack = $i++ % 2 ? $b : $a;
    my ($st, $json) = $stack->get("/recv?since=$since&id=$active");
    $since = $json->{messages}[-1]{timestamp} if @{$json->{messages}};
}

my @parts = split /\n/, $a->sql(q{SELECT nick FROM messages WHERE type = 'part'});
is_deeply(\@parts, ['idle'], 'the idle session ended with exactly one part');
# When: the part's time against the clock read before the join, so that
# neither bound depends on how long the join's transaction took. After the
# timeout, and before twice it (the sweep runs every 0.2 s; a sweep that
# waited twice the timeout ends it 2 x $timeout s after last_seen at the
# earliest, which is never before $joining + 2 x $timeout s).
my $ended = $a->sql(q{SELECT max(ts) FROM messages
                      WHERE nick = 'idle' AND type = 'part'}) - $joining;
my $ms = 1000 * $timeout;
ok($ended >= $ms && $ended < 2 * $ms,
   "it ended $ended ms after the join began: past the ${timeout} s timeout, before twice it");
my ($st, $json) = $a->get('/who');
is_deeply($json->{nicks}, ['active'], 'the active session is still there');
($st, undef, my $raw) = $a->get("/send?id=$idle&text=late");
is($raw, '{"error":"No such session id"}', 'an expired session cannot send');
($st) = $a->get("/send?id=$active&text=still+here");
is($st, 200, 'the active session can send');
($st) = $b->get('/join?nick=idle');
is($st, 200, 'the expired nick can be taken again');

# Sends keep a session alive as well.
my $talker = $a->join_nick('talker');
for (1 .. 8) {
    sleep 0.6;    # not a wait: 4.8 s of sends 0.6 s apart is what is tested
    ($st) = $b->get("/send?id=$talker&text=tick$_");
}
is($st, 200, 'a session that keeps sending stays alive past the timeout');
my ($n) = $a->sql(q{SELECT count(*) FROM messages WHERE type = 'part' AND nick = 'talker'});
is($n, 0, 'and has no part message');

$b->finish;
$a->finish;
done_testing;
