#!/usr/bin/perl
# 30-wakeup.t -- parked /recv: woken by a send through the same or another
# worker, answered with a ping when nothing comes, and never a thread or a
# connection of its own.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;
use POSIX ();
use Time::HiRes qw(time);

my $a = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 2});

# The room's newest cursor, from the database: a worker's window learns of
# a commit on its NOTIFY, which may still be on its way to the worker that
# answers, and a reader parked behind the head is answered at once with
# what it missed instead of waiting for the message under test.
sub head_of {
    my ($stack, $room) = @_;
    return $stack->sql(qq{SELECT coalesce(max(last_ts), 0) FROM rooms WHERE room = '$room'});
}

# The ping.
{
    my $id = $a->join_nick('waiter');
    my $head = head_of($a, 'lobby');
    my $t0 = time;
    my ($st, $json, $raw) = $a->get("/recv?since=$head&id=$id");
    my $took = time - $t0;
    is($st, 200, 'an idle recv is answered');
    like($raw, qr/^\{"messages":\[\],"rss":\d+,"ping":true\}$/, 'with a ping');
    ok($took >= 1.8 && $took < 6, sprintf('after the recv timeout (%.2f s)', $took));
}

# A send wakes every parked reader, whichever worker holds it.
{
    my $id = $a->join_nick('speaker');
    my $head = head_of($a, 'lobby');
    my @waiting = map { $a->get_async("/recv?since=$head") } 1 .. 8;
    $a->parked(8);
    my $t0 = time;
    my ($st) = $a->post('/send', {id => $id, text => 'wake up'});
    is($st, 200, 'the send is accepted');
    my $all = 1;
    for my $w (@waiting) {
        my ($wst, $json, $raw, $took) = $w->wait;
        my $good = $wst == 200 && @{$json->{messages}} == 1
            && $json->{messages}[0]{text} eq 'wake up' && !$json->{ping};
        diag("a parked reader got: $raw") unless $good;
        $all &&= $good;
    }
    ok($all, '8 parked readers on 2 workers all received the message');
    ok(time - $t0 < 1.5, 'and were woken at once, not by the ping timer');
}

# Two responders (two hosts, as far as they know) on one database.
my $b = Stack->new(workers => 1, db => $a->{db}, env => {PGCHAT_RECV_TIMEOUT => 20});
{
    my $id = $a->join_nick('remote');
    my $head = head_of($b, 'lobby');
    my $w = $b->get_async("/recv?since=$head");
    $b->parked(1);
    my $t0 = time;
    my ($st) = $a->post('/send', {id => $id, text => 'across'});
    my ($wst, $json, $raw) = $w->wait;
    my $took = time - $t0;
    is($wst, 200, 'a recv parked on another responder is answered');
    is($json->{messages}[0]{text}, 'across', 'with the message sent through the first');
    ok($took < 1.5, sprintf('within %.2f s of the send', $took));
    my ($st_b, $who_b) = $b->get('/who');
    my ($st_a, $who_a) = $a->get('/who');
    is_deeply($who_b->{nicks}, $who_a->{nicks}, 'both responders list the same nicks');
    my ($st_dup, undef, $raw_dup) = $b->get('/join?nick=remote');
    is($raw_dup, '{"error":"Nick in use"}', 'and nick ownership is shared');
}

# A client that leaves is forgotten.
{
    my $head = head_of($a, 'lobby');
    my $pid = fork // die;
    if ($pid == 0) {
        HTTP::Tiny->new(timeout => 0.5)->get($a->url("/recv?since=$head"));
        POSIX::_exit(0);
    }
    waitpid $pid, 0;
    # Its request is dropped when nginx passes the hang-up on, or pinged
    # after the 2 s timeout: either way nothing stays parked.
    $a->parked(0);
    my ($st) = $a->get('/who');
    is($st, 200, 'the service keeps serving after a waiting client left');
}

# A notification that arrives while the loop is busy with a query is read
# by libpq along with the query's answer, and epoll never hears of it. The
# loop must still wake the parked reader (a regression: found by make bench).
{
    my $c = Stack->new(workers => 1, env => {PGCHAT_RECV_TIMEOUT => 30});
    $c->sql(q{SELECT chat_post('big', array_fill('x'::text, ARRAY[1200]),
              array_fill('msg'::text, ARRAY[1200]),
              array_fill('filler'::text, ARRAY[1200]))});
    my $id = $c->join_nick('poker', 'quiet');
    my $hammer = fork // die;
    if ($hammer == 0) {
        # Cursors far behind: every one of these costs the loop a query.
        my $http = HTTP::Tiny->new(keep_alive => 1);
        my $t_end = time + 60;
        $http->get($c->url('/recv?since=0&room=big')) while time < $t_end;
        POSIX::_exit(0);
    }
    my ($late, $worst) = (0, 0);
    for my $i (1 .. 15) {
        # The hammer's own /recv are parked while their queries run, so
        # the reader is seen parked with the hammer held still (its last
        # request answered), and the hammer goes on before the send.
        kill 'STOP', $hammer;
        $c->parked(0);
        my $head = head_of($c, 'quiet');
        my $w = $c->get_async("/recv?since=$head&room=quiet");
        $c->parked(1);
        kill 'CONT', $hammer;
        my $t0 = time;
        $c->post('/send', {id => $id, room => 'quiet', text => "poke $i"});
        my ($st, $json) = $w->wait;
        my $took = time - $t0;
        $worst = $took if $took > $worst;
        $late++ unless $st == 200 && @{$json->{messages}} && $took < 3;
    }
    kill 'KILL', $hammer;
    waitpid $hammer, 0;
    is($late, 0, sprintf('15 parked readers woken while the loop queried '
                         . 'without pause (slowest %.2f s)', $worst));
    $c->finish;
}

# A busy room is fanned out at most once per PGCHAT_BATCH_MS (with
# PGCHAT_BATCH_READERS readers or more): a message to a quiet room goes out
# at once; what follows right after waits for the next fan-out and arrives
# in one reply with everything else that came meanwhile.
{
    my $d = Stack->new(workers => 1, env => {PGCHAT_BATCH_MS => 2000,
                                             PGCHAT_BATCH_READERS => 1});
    my $id = $d->join_nick('batcher', 'busy');
    my $head = head_of($d, 'busy');
    my $w = $d->get_async("/recv?since=$head&room=busy");
    $d->parked(1);
    my $t0 = time;
    $d->post('/send', {id => $id, room => 'busy', text => 'first'});
    my ($st, $json) = $w->wait;
    my $took = time - $t0;
    is_deeply([map { $_->{text} } @{$json->{messages} // []}], ['first'],
              'a quiet room: the first message goes out alone');
    ok($took < 1.9, sprintf('and at once (%.2f s), not after the 2 s batch interval', $took));
    my $t1 = time;
    $w = $d->get_async("/recv?since=$json->{messages}[-1]{timestamp}&room=busy");
    $d->post('/send', {id => $id, room => 'busy', text => $_}) for qw(second third);
    ($st, $json) = $w->wait;
    $took = time - $t1;
    is_deeply([map { $_->{text} } @{$json->{messages} // []}], [qw(second third)],
              'right after it, the next two wait for the next fan-out and come in one reply');
    ok($took > 1, sprintf('which is one batch interval after the first (%.2f s)', $took));
    $d->finish;
}

# With fewer readers the pause is shorter in proportion: one reader of
# the default 1000 waits 2 ms of the 2 s, so the message right after a
# fan-out goes out at once too.
{
    my $d = Stack->new(workers => 1, env => {PGCHAT_BATCH_MS => 2000});
    my $id = $d->join_nick('loner', 'small');
    my $head = head_of($d, 'small');
    my $w = $d->get_async("/recv?since=$head&room=small");
    $d->parked(1);
    $d->post('/send', {id => $id, room => 'small', text => 'first'});
    my ($st, $json) = $w->wait;
    my $t1 = time;
    $w = $d->get_async("/recv?since=$json->{messages}[-1]{timestamp}&room=small");
    $d->parked(1);
    $d->post('/send', {id => $id, room => 'small', text => 'second'});
    ($st, $json) = $w->wait;
    my $took = time - $t1;
    is_deeply([map { $_->{text} } @{$json->{messages} // []}], ['second'],
              'a room of one reader: the next message goes out alone');
    ok($took < 1.5, sprintf('without waiting for the 2 s batch interval (%.2f s)', $took));
    $d->finish;
}

my ($conns) = $a->sql(q{SELECT count(*) FROM pg_stat_activity
                        WHERE application_name LIKE 'pgchat%'});
is($conns, 6, '3 worker processes use 2 connections each, parked requests none');

$b->finish;
$a->finish;
done_testing;
