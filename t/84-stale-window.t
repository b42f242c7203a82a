#!/usr/bin/perl
# 84-stale-window.t -- a room's window is only as good as the notifications
# that kept it: after the LISTEN connection is lost, a fresh reader of a
# room that had no parked reader at that moment must not be answered from
# the old window. (The checker in t/95-history.t explores the same fault
# among many; this is the one sequence that found it, kept as an example.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;

my @frozen;
END { kill 'CONT', @frozen if @frozen }

sub backends {
    my ($s, $app) = @_;
    return split /\n/, $s->sql(qq{SELECT pid FROM pg_stat_activity
        WHERE application_name = '$app' AND datname = current_database()});
}

sub texts { [map { $_->{text} // () } @{$_[0]{messages} // []}] }

my $s = Stack->new(workers => 1, env => {PGCHAT_DB_TIMEOUT => 1,
                                         PGCHAT_RECV_TIMEOUT => 20});
my $id = $s->join_nick('alice');
is(($s->post('/send', {id => $id, text => 'before'}))[0], 200, 'before is stored');
# The room gets a window: a reader is answered from a query and nobody
# stays parked in the room.
ok(Stack::wait_until(5, sub {
    my (undef, $j) = $s->get('/recv?since=1');
    grep { $_ eq 'before' } @{texts($j)};
}), 'a reader sees before, and the room now has a window');

my ($listen) = backends($s, 'pgchat-listen');
ok($listen, 'the LISTEN backend is found');
kill 'STOP', $listen;
push @frozen, $listen;
is(($s->post('/send', {id => $id, text => 'during'}))[0], 200,
   'a send is stored while the LISTEN backend is frozen');
ok(Stack::wait_until(10, sub { grep { $_ != $listen } backends($s, 'pgchat-listen') }),
   'the frozen LISTEN connection is replaced');
is(($s->post('/send', {id => $id, text => 'after'}))[0], 200, 'after is stored');
kill 'CONT', $listen;
@frozen = ();

# Within the staleness bound of a replaced connection (2 x PGCHAT_DB_TIMEOUT
# + 1 s), a fresh reader sees the room as the table holds it.
my $seen = [];
ok(Stack::wait_until(3, sub {
    my (undef, $j) = $s->get('/recv?since=1');
    $seen = texts($j);
    "@$seen" eq 'before during after';
}), 'a fresh reader sees before, during, after, not an old window')
    or diag("last answer: @$seen");
is_deeply([split /\n/, $s->sql(q{SELECT text FROM messages WHERE type = 'msg' ORDER BY ts})],
          [qw(before during after)], 'the table holds the three, once each');

$s->finish;
done_testing;
