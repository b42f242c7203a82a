#!/usr/bin/perl
# 50-restart.t -- history lives in PostgreSQL: it survives a restart of the
# responder. SIGTERM answers parked requests with a ping and stops quickly.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;
use Time::HiRes qw(time);

my $s = Stack->new(workers => 2);
my $id = $s->join_nick('keeper');
$s->post('/send', {id => $id, text => "message $_"}) for 1 .. 3;
my ($st, $json) = $s->get('/recv?since=0');
my @before = @{$json->{messages}};
my $head = $before[-1]{timestamp};

my @parked = map { $s->get_async("/recv?since=$head") } 1 .. 4;
$s->parked(4);
my $took = $s->stop_responder;
ok($took < 2, sprintf('SIGTERM stops the responder in %.2f s', $took));
is($s->{responder_status}, 0, 'and it exits with status 0');
my $pinged = grep {
    my ($wst, $wjson) = $_->wait;
    $wst == 200 && $wjson->{ping};
} @parked;
is($pinged, 4, 'every parked request was answered with a ping');

$s->start_responder;
$s->wait_up;
($st, $json) = $s->get('/recv?since=0');
is_deeply($json->{messages}, \@before, 'the history is intact after a restart');
($st) = $s->post('/send', {id => $id, text => 'after'});
is($st, 200, 'a session outlives a restart of the responder');
($st, $json) = $s->get("/recv?since=$head");
is($json->{messages}[0]{text}, 'after', 'and new messages follow the old ones');

$s->finish;
done_testing;
