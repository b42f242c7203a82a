#!/usr/bin/perl
# 76-logs.t -- no session id and no message text of our client's requests
# reaches any log (nginx's access and error logs, the responder's log,
# PostgreSQL's log), whatever goes wrong: a flood (rate limits), a bad
# request, a stalled body (timeout), a responder killed under a waiting
# /recv, a responder down (outage). Our client sends ids in form bodies and
# the X-Pgchat-Id header, never in a URL.
#
# The classic client's GET URLs, and search text, are in query strings:
# they are never in the access log (its format has no query string), never
# in a refusal's line (logged at info, below the error log's level), and
# not in nginx's error log even when the responder is down (502) or stops
# answering (504): for requests that log is at alert, nginx's own failures.
#
# Also here: a body trickled a byte a second is cut off within a bound
# (nginx passes the body on as it comes; the responder bounds the whole
# request from its first byte), and nothing of it is logged.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(wait_until slurp);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);

my $s = Stack->new(workers => 1, env => {RATE_LIMIT => 1, PGCHAT_ADDR_SEND_RATE => '5r/s',
                                        PGCHAT_ADDR_SEND_BURST => 5, PGCHAT_RECV_TIMEOUT => 20});
# A connection for each request: nginx may close a kept one after an error
# whose body it did not read (bodies pass through unbuffered), and
# HTTP::Tiny does not send a POST again on a new one (599).
my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
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
sleep 1.2;    # not a wait: the limit's bucket refills
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

# A body trickled a byte a second: no gap is long enough for nginx's
# client_body_timeout (10 s), and 1000 bytes would take 17 minutes. nginx
# passes it on unbuffered, and the responder cuts a request that is not
# whole 10 s after its first byte. The bound: 10 s after the header, plus
# the test's slack on a busy machine.
my $TRICKLE_BOUND = 16;
{
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port) or die;
    print $sock "POST /send HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        . "Content-Length: 1000\r\n\r\nid=$id&text=$secret-trickle";
    my ($t0, $sent, $cut, $answer) = (time, 0, undef, '');
    my $sel = IO::Select->new($sock);
    while (time - $t0 < $TRICKLE_BOUND + 5) {
        if ($sel->can_read(1)) {    # the pause between bytes is the attack
            my $n = sysread($sock, my $buf, 65536);
            $answer .= $buf if $n;
            $cut = time - $t0;
            last;
        }
        defined syswrite($sock, 'x') or do { $cut = time - $t0; last };
        $sent++;
    }
    ok(defined $cut && $cut <= $TRICKLE_BOUND,
       sprintf('a body trickled a byte a second is cut off within %d s (after %.1f s, %d bytes)',
               $TRICKLE_BOUND, $cut // -1, $sent));
    ok($sent >= 5, '  while it was still coming');
    my ($status) = $answer =~ m{^HTTP/1\.1 (\d+)};
    diag("the trickled request was answered " . ($status // 'nothing'));
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
    Stack::wait_for(10, 'the /recv parked', sub { ($s->metric('pgchat_parked_requests') // 0) >= 1 });
    kill 'KILL', $s->worker_pids;
    waitpid $pid, 0;
    is($? >> 8, 0, 'a waiting /recv whose worker was killed is answered');
    $w->wait;
    ok(wait_until(30, sub { recv_with_header($id, 'lobby') == 200 }), 'the worker is replaced');
}

# A responder that stops answering: nginx gives up after
# fastcgi_read_timeout (made 2 s here) with a 504, and the search text of
# the request it gave up on is not in its error log.
my $search_text = "search-secret-$tag";
{
    my $conf = $s->dir . '/nginx/nginx.conf';
    my $text = slurp($conf);
    $text =~ s/fastcgi_read_timeout 60s;/fastcgi_read_timeout 2s;/ or die 'no fastcgi_read_timeout';
    Stack::spew($conf, $text);
    my @old = $s->nginx_workers;
    $s->reload_nginx;
    $s->nginx_reloaded(@old);
    # Until the old workers close their listening sockets, one of them may
    # take the next connection, under the old timeout.
    Stack::wait_for(30, 'the old nginx workers to exit', sub {
        my %now = map { $_ => 1 } $s->nginx_workers;
        !grep { $now{$_} } @old;
    });
    my @stopped = ($s->responder_pid, $s->worker_pids);
    kill 'STOP', @stopped;
    my $res = HTTP::Tiny->new(timeout => 30)->get($s->url("/search?q=$search_text&room=lobby"));
    kill 'CONT', @stopped;
    is("$res->{status} $res->{content}", '504 {"error":"Chat server unavailable, try again"}',
       'a responder that stops answering: 504 after fastcgi_read_timeout, in JSON');
    ok(wait_until(30, sub { recv_with_header($id, 'lobby') == 200 }), 'the responder answers again');
}

# An outage: the responder stopped; our client keeps trying.
$s->stop_responder;
my $mark = $s->log_mark('access');
is(recv_with_header($id, 'lobby'), 502, 'responder down: /recv answers 502');
is(post('/send', "id=$id&text=$secret"), 502, 'and /send 502');
is(post('/part', "id=$id"), 502, 'and /part 502');
$s->start_responder;
$s->wait_up;
$s->wait_log(qr{"POST /part" 502}, $mark);    # nginx has logged the last of them

nowhere('the session id of our client', $id);
nowhere('the text our client sent', $secret);
nowhere('the search text of a request nginx gave up on (504)', $search_text);

# --- the classic client: GET with the id and text in the query ----------------
my $classic = $s->join_nick("classic$tag");
my $classic_text = "classic-text-$tag";
my ($cst) = $s->get("/send?id=$classic&text=$classic_text");
is($cst, 200, 'a classic GET /send works');
($cst) = $s->get("/recv?since=0&id=$classic");
is($cst, 200, 'a classic GET /recv?id= works');
sleep 1.2;    # not a wait: the limit's bucket refills, so the flood starts full
$mark = $s->log_mark('access');
my %cl;
$cl{($s->get("/send?id=$classic&text=$classic_text"))[0]}++ for 1 .. 20;
ok($cl{429}, "a classic flood is refused too ($cl{429} with 429)");
$s->wait_log(qr{"GET /send" 429}, $mark);
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
$s->wait_log(qr{"GET /recv" 502}, $mark);
{
    my $logs = logs();
    for my $name (sort keys %$logs) {
        ok(index($logs->{$name}, $classic) < 0, "its id is not in the $name log either");
    }
}
$s->start_responder;
$s->wait_up;
$s->finish;
done_testing;
