#!/usr/bin/perl
# 84-stale-window.t -- a room's window is only as good as the notifications
# that kept it: after the LISTEN connection is lost, a fresh reader of a
# room that had no parked reader at that moment must not be answered from
# the old window. (The checker in t/95-history.t explores the same fault
# among many; this is the one sequence that found it, kept as an example.)
# Two defences stand against it, and each hides the other's absence from
# the checker's seeds, so each has a case here that fails without it:
# every window is dropped when the LISTEN connection is lost (the first
# case), and a window answers alone only within 1 s of hearing from its
# room (the second).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;
use Time::HiRes ();

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
# The new connection is listening once a notification arrives on it: a
# message to another room, until one is counted.
my $probe = $s->join_nick('carol', 'probe');
my $base = $s->metric('pgchat_notify_batches_total') // 0;
my $n = 0;
ok(Stack::wait_until(10, sub {
    $s->post('/send', {id => $probe, room => 'probe', text => 'probe ' . $n++});
    Stack::wait_until(0.5, sub { ($s->metric('pgchat_notify_batches_total') // 0) > $base });
}), 'the new LISTEN connection hears notifications');
$base = $s->metric('pgchat_notify_batches_total');
is(($s->post('/send', {id => $id, text => 'after'}))[0], 200, 'after is stored');
ok(Stack::wait_until(5, sub { $s->metric('pgchat_notify_batches_total') > $base }),
   "  and its notification has come, so the worker has heard from the room");
kill 'CONT', $listen;
@frozen = ();

# The very first fresh read sees the room as the table holds it. The
# worker heard from the room a moment ago (after's notification, which
# follows on no window it holds), so the 1 s rule alone would let an old
# window answer: what refuses it is that every window was dropped when
# the LISTEN connection was lost.
my (undef, $j) = $s->get('/recv?since=1');
is("@{texts($j)}", 'before during after',
   'a fresh reader right after sees before, during, after, not an old window');
is_deeply([split /\n/, $s->sql(q{SELECT text FROM messages WHERE type = 'msg' AND room <> 'probe' ORDER BY ts})],
          [qw(before during after)], 'the table holds the three, once each');

$s->finish;

# A window that has not heard from its room for longer than the staleness
# bound (1 s) does not answer alone: with a LISTEN backend frozen and a
# long PGCHAT_DB_TIMEOUT, the connection is not found out for seconds, and
# a fresh reader meanwhile waits for the room to be read rather than get
# the old window.
{
    my $q = Stack->new(workers => 1, env => {PGCHAT_DB_TIMEOUT => 4,
                                             PGCHAT_RECV_TIMEOUT => 20});
    my $qid = $q->join_nick('bob');
    is(($q->post('/send', {id => $qid, text => 'old'}))[0], 200, 'old is stored');
    my $heard;    # when the window last heard from the room, at the latest
    ok(Stack::wait_until(5, sub {
        my (undef, $j) = $q->get('/recv?since=1');
        $heard = Time::HiRes::time();
        grep { $_ eq 'old' } @{texts($j)};
    }), 'a reader sees old, and the room has a window');
    my ($l) = backends($q, 'pgchat-listen');
    kill 'STOP', $l;
    push @frozen, $l;
    is(($q->post('/send', {id => $qid, text => 'new'}))[0], 200,
       'new is stored while the LISTEN backend is frozen');
    # Fresh readers until one sees new (the connection is found out and
    # replaced in about 4-8 s); every one that began past the bound must.
    my @stale;
    ok(Stack::wait_until(30, sub {
        my $t0 = Time::HiRes::time();
        my (undef, $j) = $q->get('/recv?since=1');
        my $got = "@{texts($j)}";
        push @stale, sprintf('%.1f s', $t0 - $heard) if $got ne 'old new' && $t0 - $heard > 1.2;
        return $got eq 'old new';
    }), 'a fresh reader sees new in the end');
    kill 'CONT', $l;
    @frozen = ();
    is("@stale", '', 'no read that began past the 1 s bound got the old window alone');
    $q->finish;
}
done_testing;
