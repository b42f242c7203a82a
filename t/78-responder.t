#!/usr/bin/perl
# 78-responder.t -- the responder's own guards:
#   1. the session id from the X-Pgchat-Id header (and the form body) for
#      /recv, /send and /part, so that our client puts no id in a URL;
#   2. /join, /part and /send refuse cross-site requests (Sec-Fetch-Site
#      cross-site or same-site, or an Origin that is not the Host) with 403
#      {"error":"Cross-site request refused"}; same-origin requests and
#      requests with neither header work;
#   3. sessions per client address per room are capped
#      (PGCHAT_ADDR_SESSIONS): 403 {"error":"Too many sessions from your
#      address"}, while another address still joins; nicks are unique
#      whatever their case (400 "Nick in use");
#   4. a TCP PGCHAT_SOCKET that is not loopback is refused at start
#      without FCGI_WEB_SERVER_ADDRS.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(wait_until slurp port_open start_group stop_group reap);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep);

my $JSON = JSON::PP->new->utf8;
my $FORM = {'Content-Type' => 'application/x-www-form-urlencoded'};

sub req {
    my ($http, $method, $url, $headers, $body) = @_;
    my $res = $http->request($method, $url, {headers => {%{$headers // {}}},
                                              defined $body ? (content => $body) : ()});
    return ($res->{status}, $res->{content});
}

# --- 1. the id from a header or the body -----------------------------------
subtest 'the session id from X-Pgchat-Id or the form body' => sub {
    my $s = Stack->new(workers => 1, env => {PGCHAT_SESSION_TIMEOUT => 2,
                                            PGCHAT_SWEEP_INTERVAL => 0.2,
                                            PGCHAT_RECV_TIMEOUT => 1});
    my $http = HTTP::Tiny->new(timeout => 30);
    my $id = $s->join_nick('header');
    # Only /recv with the id in the header keeps the session alive.
    for (1 .. 5) {
        my ($st) = req($http, 'GET', $s->url('/recv?since=0&room=quiet'), {'X-Pgchat-Id' => $id});
        is($st, 200, 'a /recv with X-Pgchat-Id answers');
    }
    my ($st, $raw) = req($http, 'POST', $s->url('/send'), {%$FORM, 'X-Pgchat-Id' => $id},
                         'text=kept+alive+by+the+header');
    like("$st $raw", qr/^200 \{"rss":\d+,"timestamp":\d+\}$/,
         '5 s of /recv with X-Pgchat-Id (timeout 2 s) kept the session: a send with the id in the header works');
    ($st, $raw) = req($http, 'POST', $s->url('/send'), $FORM, "id=$id&text=id+in+the+body");
    is($st, 200, 'a send with the id in the body works') or diag($raw);
    ($st) = req($http, 'POST', $s->url('/part'), {%$FORM, 'X-Pgchat-Id' => $id}, '');
    is($st, 200, 'a part with the id in the header answers');
    is($s->sql(q{SELECT count(*) FROM sessions}), 0, 'and ends the session');
    is($s->sql(q{SELECT string_agg(coalesce(text, type), '|' ORDER BY ts) FROM messages}),
       'join|kept alive by the header|id in the body|part', 'everything was stored');
    $s->finish;
};

# --- 2. no cross-site actions ------------------------------------------------
subtest 'cross-site /join, /send and /part are refused' => sub {
    my $s = Stack->new(workers => 1);
    my $http = HTTP::Tiny->new(timeout => 30);
    my $host = '127.0.0.1:' . $s->port;
    my $refused = '403 {"error":"Cross-site request refused"}';
    my $id = $s->join_nick('victim');
    my @hostile = (
        ['Sec-Fetch-Site: cross-site', {'Sec-Fetch-Site' => 'cross-site'}],
        ['Sec-Fetch-Site: same-site', {'Sec-Fetch-Site' => 'same-site'}],
        ['a foreign Origin', {Origin => 'https://evil.example'}],
        ['cross-site with a foreign Origin', {'Sec-Fetch-Site' => 'cross-site', Origin => 'https://evil.example'}],
        ['an Origin on another port', {Origin => 'http://127.0.0.1:1'}],
        ['Origin: null', {Origin => 'null'}],
    );
    for my $h (@hostile) {
        my ($what, $headers) = @$h;
        my ($st, $raw) = req($http, 'POST', $s->url('/join'), {%$FORM, %$headers}, 'nick=evil1');
        is("$st $raw", $refused, "POST /join with $what");
        ($st, $raw) = req($http, 'GET', $s->url('/join?nick=evil2'), $headers);
        is("$st $raw", $refused, "GET /join with $what");
        ($st, $raw) = req($http, 'POST', $s->url('/send'), {%$FORM, %$headers}, "id=$id&text=forged");
        is("$st $raw", $refused, "POST /send with $what");
        ($st, $raw) = req($http, 'POST', $s->url('/part'), {%$FORM, %$headers}, "id=$id");
        is("$st $raw", $refused, "POST /part with $what");
    }
    is($s->sql(q{SELECT count(*) FROM sessions WHERE nick LIKE 'evil%'}), 0, 'no session was made');
    is($s->sql(q{SELECT count(*) FROM messages WHERE text = 'forged'}), 0, 'nothing was sent');
    is($s->sql(q{SELECT count(*) FROM sessions WHERE nick = 'victim'}), 1, 'nobody was parted');

    my @fine = (
        ['neither header', {}],
        ['Sec-Fetch-Site: same-origin and the same Origin',
         {'Sec-Fetch-Site' => 'same-origin', Origin => "http://$host"}],
        ['Sec-Fetch-Site: none (typed in the address bar)', {'Sec-Fetch-Site' => 'none'}],
        ['the same Origin alone', {Origin => "http://$host"}],
    );
    my $n = 0;
    for my $h (@fine) {
        my ($what, $headers) = @$h;
        $n++;
        my ($st, $raw) = req($http, 'POST', $s->url('/join'), {%$FORM, %$headers}, "nick=fine$n");
        is($st, 200, "POST /join with $what works") or diag($raw);
        my $fid = eval { $JSON->decode($raw)->{id} } // '';
        ($st, $raw) = req($http, 'POST', $s->url('/send'), {%$FORM, %$headers}, "id=$fid&text=fine");
        is($st, 200, "POST /send with $what works") or diag($raw);
        ($st, $raw) = req($http, 'POST', $s->url('/part'), {%$FORM, %$headers}, "id=$fid");
        is($st, 200, "POST /part with $what works") or diag($raw);
    }
    my ($st) = req($http, 'GET', $s->url('/who'), {'Sec-Fetch-Site' => 'cross-site'});
    is($st, 200, 'reading (/who) cross-site is not refused');
    $s->finish;
};

# --- 3. one address cannot fill a room ----------------------------------------
subtest 'sessions per address per room are capped' => sub {
    my $s = Stack->new(workers => 1, env => {
        RATE_LIMIT => 1, PGCHAT_JOIN_RATE => '100r/s', PGCHAT_JOIN_BURST => 100,
        PGCHAT_ROOM_SESSIONS => 6, PGCHAT_ADDR_SESSIONS => 3,
    });
    my $one = HTTP::Tiny->new(timeout => 30, local_address => '127.0.0.1');
    my $two = HTTP::Tiny->new(timeout => 30, local_address => '127.0.0.2');
    for my $i (1 .. 3) {
        my ($st, $raw) = req($one, 'GET', $s->url("/join?nick=one$i&room=hall"));
        is($st, 200, "address 1, session $i: joined") or diag($raw);
    }
    my ($st, $raw) = req($one, 'GET', $s->url('/join?nick=one4&room=hall'));
    is("$st $raw", '403 {"error":"Too many sessions from your address"}',
       'address 1, session 4: refused, PGCHAT_ADDR_SESSIONS=3');
    ($st) = req($one, 'GET', $s->url('/join?nick=one4&room=other'));
    is($st, 200, 'address 1 may still join another room');
    for my $i (1 .. 3) {
        ($st, $raw) = req($two, 'GET', $s->url("/join?nick=two$i&room=hall"));
        is($st, 200, "address 2, session $i: joined the room address 1 filled as far as it could")
            or diag($raw);
    }
    ($st, $raw) = req($two, 'GET', $s->url('/join?nick=two4&room=hall'));
    like("$st $raw", qr/^403 /, 'the room cap (6) still holds');

    # Case-insensitive nicks.
    ($st) = req($two, 'GET', $s->url('/join?nick=admin&room=case'));
    is($st, 200, 'admin joins');
    for my $nick (qw(Admin ADMIN aDmIn)) {
        ($st, $raw) = req($one, 'GET', $s->url("/join?nick=$nick&room=case"));
        is("$st $raw", '400 {"error":"Nick in use"}', "$nick is refused while admin is in");
    }
    $s->finish;

    $s = Stack->new(workers => 1, env => {RATE_LIMIT => 0, PGCHAT_ADDR_SESSIONS => 2});
    my $ok = 0;
    for my $i (1 .. 4) {
        ($st) = req($one, 'GET', $s->url("/join?nick=free$i"));
        $ok++ if $st == 200;
    }
    is($ok, 4, 'RATE_LIMIT=0: no cap per address');
    $s->finish;
};

# --- 4. a public TCP socket ----------------------------------------------------
subtest 'a TCP socket others can reach needs FCGI_WEB_SERVER_ADDRS' => sub {
    my $dir = tempdir('tcp-XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp', CLEANUP => 1);
    chmod 0755, $dir;
    my $db = Stack::new_db('tcp', 'template_pgchat');
    my %env = (DATABASE_URL => Stack::db_url($db), WEB_CONCURRENCY => 1, RATE_LIMIT => 0);
    for my $addr ('0.0.0.0', '[::]') {
        my $port = Stack::free_port();
        my $log = "$dir/public-$port.log";
        my $pid = start_group($log, $log, {%env, PGCHAT_SOCKET => "$addr:$port",
                                           FCGI_WEB_SERVER_ADDRS => undef},
                              Stack::as_user(Stack::binary()));
        my $status = reap($pid, 20);
        ok(defined $status && $status >> 8 != 0, "PGCHAT_SOCKET=$addr:$port without FCGI_WEB_SERVER_ADDRS: "
           . 'the responder refuses to start');
        stop_group($pid, 'KILL') unless defined $status;
        Stack::forget_group($pid);
        like(slurp($log), qr/FCGI_WEB_SERVER_ADDRS/, 'and says why') or diag(slurp($log));
        ok(!port_open($port), 'nothing listens on the port');
    }
    my $port = Stack::free_port();
    my $log = "$dir/allowed.log";
    my $pid = start_group($log, $log, {%env, PGCHAT_SOCKET => "0.0.0.0:$port",
                                       FCGI_WEB_SERVER_ADDRS => '127.0.0.1'},
                          Stack::as_user(Stack::binary()));
    ok(wait_until(30, sub { port_open($port) }), 'with FCGI_WEB_SERVER_ADDRS it starts')
        or diag(slurp($log));
    stop_group($pid);
    # On an IPv6 socket an IPv4 peer is ::ffff:127.0.0.1: it matches
    # 127.0.0.1 in FCGI_WEB_SERVER_ADDRS, and nothing else does.
    my $raw_who = sub {
        my ($p) = @_;
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p, Timeout => 10)
            or return 'no connection';
        my $rec = sub { pack('CCnnCC', 1, $_[0], 1, length $_[1], 0, 0) . $_[1] };
        my $pair = sub { pack('CC', length $_[0], length $_[1]) . $_[0] . $_[1] };
        print $c $rec->(1, pack('nCx5', 1, 0)), $rec->(4, $pair->('REQUEST_METHOD', 'GET')
            . $pair->('DOCUMENT_URI', '/who')), $rec->(4, ''), $rec->(5, '');
        local $/;
        my $got = <$c> // '';
        return $got =~ /(Status: \d+)/ ? $1 : 'no status';
    };
    for my $case (['127.0.0.1', 'Status: 200', 'is answered'],
                  ['127.0.0.2', 'no status', 'is closed unanswered']) {
        my ($allowed, $want, $what) = @$case;
        $port = Stack::free_port();
        $log = "$dir/mapped-$allowed.log";
        $pid = start_group($log, $log, {%env, PGCHAT_SOCKET => "[::]:$port",
                                        FCGI_WEB_SERVER_ADDRS => $allowed},
                           Stack::as_user(Stack::binary()));
        ok(wait_until(30, sub { port_open($port) && slurp($log) =~ /worker started/ }),
           "PGCHAT_SOCKET=[::]:port with FCGI_WEB_SERVER_ADDRS=$allowed starts")
            or diag(slurp($log));
        is($raw_who->($port), $want,
           "a FastCGI request from 127.0.0.1 (::ffff:127.0.0.1 there) $what");
        stop_group($pid);
    }

    $port = Stack::free_port();
    $log = "$dir/loopback.log";
    $pid = start_group($log, $log, {%env, PGCHAT_SOCKET => "127.0.0.1:$port",
                                    FCGI_WEB_SERVER_ADDRS => undef},
                       Stack::as_user(Stack::binary()));
    ok(wait_until(30, sub { port_open($port) }), 'a loopback TCP socket needs no FCGI_WEB_SERVER_ADDRS')
        or diag(slurp($log));
    stop_group($pid);
};

done_testing;
