#!/usr/bin/perl
# 76-logs.t -- no session id and no message text of our client's requests
# reaches any log (nginx's access and error logs, the responder's log,
# PostgreSQL's log), whatever goes wrong: a flood (rate limits), a bad
# request, a stalled body (timeout), a responder killed under a waiting
# /recv, a responder down (outage). Our client sends ids in form bodies and
# the X-Pgchat-Id header, never in a URL.
#
# The classic client's GET URLs are the documented exception (README,
# Security): they are never in the access log and never in a refusal's
# log line, but nginx's error log has the request line of a request it
# could not pass to the responder.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(wait_until slurp);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep);

my $s = Stack->new(workers => 1, env => {RATE_LIMIT => 1, PGCHAT_ADDR_SEND_RATE => '5r/s',
                                        PGCHAT_ADDR_SEND_BURST => 5, PGCHAT_RECV_TIMEOUT => 20});
my $http = HTTP::Tiny->new(timeout => 30);
my $FORM = {'Content-Type' => 'application/x-www-form-urlencoded'};
my $tag = int(rand(1e9));
my $secret = "secret-text-$tag";

sub post {
    my ($path, $body, $headers) = @_;
    my $res = $http->request('POST', $s->url($path),
                             {headers => {%$FORM, %{$headers // {}}}, content => $body});
    return $res->{status};
}
sub recv_with_header {
    my ($id, $room) = @_;
    return $http->request('GET', $s->url("/recv?since=0&room=$room"),
                          {headers => {'X-Pgchat-Id' => $id}})->{status};
}

# Every log a stack writes, and PostgreSQL's.
sub logs {
    return {
        access => $s->log('access'),
        'nginx error' => $s->log('nginx'),
        responder => $s->log('responder'),
        postgres => slurp(Stack::pg_dir() . '/postgres.log'),
    };
}
sub nowhere {
    my ($what, @secrets) = @_;
    my $logs = logs();
    for my $name (sort keys %$logs) {
        my @found = grep { index($logs->{$name}, $_) >= 0 } @secrets;
        ok(!@found, "$what: not in the $name log") or diag("found: @found");
    }
}

my (undef, $json) = $s->post('/join', {nick => "logger$tag"});
my $id = $json->{id};
like($id, qr/^[0-9a-f]{32}$/, 'joined (POST, as our client does)');

# A flood: the per-address send limit (5/s, bursts of 5) refuses most.
my %st;
$st{post('/send', "id=$id&text=$secret")}++ for 1 .. 40;
ok($st{429} && $st{200}, "a flood of sends: $st{200} accepted, $st{429} refused by nginx");

# Bad requests: too large (413), a wrong content type (415), a bad id.
sleep 1.2;    # the limit's bucket refills
is(post('/send', "id=$id&text=$secret" . ('x' x 70000)), 413, 'a body over 64 KB: 413');
{
    my $res = $http->request('POST', $s->url('/send'), {headers => {'Content-Type' => 'text/plain'},
                                                         content => "id=$id&text=$secret"});
    is($res->{status}, 415, 'a body of another type: 415');
}
is(post('/send', "id=${id}0&text=$secret"), 400, 'a malformed id: 400');
is(post('/send', "id=$id&text=$secret\x1b[2J"), 400, 'a control character: 400');

# A timeout: a body that stalls (nginx drops it after 10 s).
{
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port) or die;
    print $sock "POST /send HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        . "Content-Length: 1000\r\n\r\nid=$id&text=$secret";
    my $closed = 0;
    if (IO::Select->new($sock)->can_read(15)) {
        my $n = sysread($sock, my $buf, 65536);
        $closed = 1 if !$n || $buf =~ m{^HTTP/1\.1 408};
    }
    ok($closed, 'a stalled body is dropped');
    close $sock;
}

# A responder killed under a waiting /recv (our client: the id in the header).
{
    my $w = Stack::Pending->new($s->url('/recv?since=0&room=quiet'));
    # nginx may retry it on a new connection (the replacement worker then
    # answers it): any answer will do, the point is the error log's line.
    my $pid = fork // die;
    if ($pid == 0) {
        my $st = recv_with_header($id, 'quiet');
        POSIX::_exit($st =~ /^(200|502|503|504)$/ ? 0 : 1);
    }
    sleep 1;
    kill 'KILL', $s->worker_pids;
    waitpid $pid, 0;
    is($? >> 8, 0, 'a waiting /recv whose worker was killed is answered');
    $w->wait;
    ok(wait_until(30, sub { recv_with_header($id, 'lobby') == 200 }), 'the worker is replaced');
}

# An outage: the responder stopped; our client keeps trying.
$s->stop_responder;
is(recv_with_header($id, 'lobby'), 502, 'responder down: /recv answers 502');
is(post('/send', "id=$id&text=$secret"), 502, 'and /send 502');
is(post('/part', "id=$id"), 502, 'and /part 502');
$s->start_responder;
$s->wait_up;
sleep 0.5;    # nginx and the responder write their last lines

nowhere('the session id of our client', $id);
nowhere('the text our client sent', $secret);

# --- the classic client: GET with the id and text in the query ----------------
my $classic = $s->join_nick("classic$tag");
my $classic_text = "classic-text-$tag";
my ($cst) = $s->get("/send?id=$classic&text=$classic_text");
is($cst, 200, 'a classic GET /send works');
($cst) = $s->get("/recv?since=0&id=$classic");
is($cst, 200, 'a classic GET /recv?id= works');
sleep 1.2;
my %cl;
$cl{($s->get("/send?id=$classic&text=$classic_text"))[0]}++ for 1 .. 20;
ok($cl{429}, "a classic flood is refused too ($cl{429} with 429)");
sleep 0.5;
{
    my $logs = logs();
    for my $name (sort keys %$logs) {
        ok(index($logs->{$name}, $classic) < 0 && index($logs->{$name}, $classic_text) < 0,
           "classic client, served or refused by a limit: its id and text are not in the $name log");
    }
}
$s->stop_responder;
($cst) = $s->get("/recv?since=0&id=$classic");
is($cst, 502, 'a classic GET /recv?id= while the responder is down: 502');
sleep 0.5;
{
    my $logs = logs();
    ok(index($logs->{'nginx error'}, $classic) >= 0,
       "the documented exception: nginx's error log has that request line, id and all");
    for my $name (grep { $_ ne 'nginx error' } sort keys %$logs) {
        ok(index($logs->{$name}, $classic) < 0, "but not the $name log");
    }
}
$s->start_responder;
$s->wait_up;
$s->finish;
done_testing;
