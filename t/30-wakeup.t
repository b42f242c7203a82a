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
use Time::HiRes qw(sleep time);

my $a = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 2});

sub head_of {
    my ($stack, $room) = @_;
    my ($st, $json) = $stack->get("/recv?since=0&room=$room");
    return @{$json->{messages}} ? $json->{messages}[-1]{timestamp} : 0;
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
    sleep 0.5;
    my $t0 = time;
    my ($st) = $a->post('/send', {id => $id, text => 'wake up'});
    is($st, 200, 'the send is accepted');
    my $all = 1;
    for my $w (@waiting) {
        my ($wst, $json, $raw, $took) = $w->wait;
        $all &&= $wst == 200 && @{$json->{messages}} == 1
            && $json->{messages}[0]{text} eq 'wake up' && !$json->{ping};
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
    sleep 0.5;
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
    sleep 0.3;
    my ($st) = $a->get('/who');
    is($st, 200, 'the service keeps serving after a waiting client left');
}

my ($conns) = $a->sql(q{SELECT count(*) FROM pg_stat_activity
                        WHERE application_name LIKE 'pgchat%'});
is($conns, 6, '3 worker processes use 2 connections each, parked requests none');

$b->finish;
$a->finish;
done_testing;
