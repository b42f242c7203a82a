#!/usr/bin/perl
# 82-reads-rooms.t -- what one address may take of a worker, and a guard an
# empty setting must not turn off:
#   1. an empty FCGI_WEB_SERVER_ADDRS is refused at start, like a missing one;
#   2. one address may make at most PGCHAT_ADDR_ROOMS rooms a minute exist
#      in a worker through /recv and /events: past it, 429 JSON with
#      Retry-After, and other addresses are not touched;
#   3. one address may have at most PGCHAT_ADDR_READS reads (/history,
#      /search) queued or running in a worker: past it, 429 with Retry-After;
#      a full queue answers 503 with Retry-After; both at once, without
#      waiting behind the backlog; and everything admitted is answered once
#      the database moves again;
#   4. a write's Origin is compared exactly: scheme, host and port; an
#      Origin of null is taken only with Sec-Fetch-Site: same-origin;
#   5. one address asking for 500 new rooms a second, with the default
#      limits, does not move another room's delivery p99 past twice what it
#      was, or 200 ms, whichever is more (60 deliveries' p99 is their
#      slowest, noisy on a shared box; unbounded room creation once moved it
#      to half a second).
# The archive is made to stand still by stopping its backend (SIGSTOP).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP;
use POSIX ();
use Stack qw(wait_until slurp port_open start_group stop_group reap forget_group);
use Test::More;
use Time::HiRes qw(sleep time);

# A GET from a chosen loopback address: (status, raw body, Retry-After).
sub get_from {
    my ($s, $addr, $path, $timeout) = @_;
    my $res = HTTP::Tiny->new(local_address => $addr, timeout => $timeout // 30)
        ->get($s->url($path));
    return ($res->{status}, $res->{content}, $res->{headers}{'retry-after'});
}

# The same in a child process; ->() waits for it and returns what get_from did.
sub get_from_async {
    my ($s, $addr, $path, $timeout) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        my @res = get_from($s, $addr, $path, $timeout);
        print $w JSON::PP->new->encode([map { $_ // '' } @res]);
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    return sub {
        local $/;
        my $data = <$r>;
        waitpid $pid, 0;
        return @{JSON::PP->new->decode($data)};
    };
}

# --- 1. an empty FCGI_WEB_SERVER_ADDRS -----------------------------------------
{
    my $dir = tempdir('empty-XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp', CLEANUP => 1);
    chmod 0755, $dir;
    my $db = Stack::new_db('emptyaddrs', 'template_pgchat');
    my $port = Stack::free_port();
    my $log = "$dir/responder.log";
    my $pid = start_group($log, $log, {DATABASE_URL => Stack::db_url($db), WEB_CONCURRENCY => 1,
                                       PGCHAT_SOCKET => "0.0.0.0:$port",
                                       FCGI_WEB_SERVER_ADDRS => ''},
                          Stack::as_user($ENV{PGCHAT_TEST_BINARY} // "$Stack::TOP/fcgi/pgchat-asan"));
    my $status = reap($pid, 20);
    ok(defined $status && $status >> 8 != 0,
       'PGCHAT_SOCKET=0.0.0.0 with FCGI_WEB_SERVER_ADDRS set but empty: the responder refuses to start');
    stop_group($pid, 'KILL') unless defined $status;
    forget_group($pid);
    like(slurp($log), qr/FCGI_WEB_SERVER_ADDRS is set but names no address/, 'and says why') or diag(slurp($log));
    ok(!port_open($port), 'nothing listens on the port');
}

# --- 2. rooms --------------------------------------------------------------------
{
    my $s = Stack->new(workers => 1, env => {RATE_LIMIT => 1, PGCHAT_ADDR_ROOMS => 3,
                                             PGCHAT_RECV_TIMEOUT => 1});
    for my $n (1 .. 3) {
        my ($st) = get_from($s, '127.0.0.2', "/recv?room=made$n&since=0");
        is($st, 200, "a /recv in new room $n of 3 is served");
    }
    my $t0 = time;
    my ($st, $raw, $retry) = get_from($s, '127.0.0.2', '/recv?room=made4&since=0');
    is("$st $raw", '429 {"error":"Too many new rooms, slow down"}', 'the 4th new room in a minute: 429 JSON');
    is($retry, 21, 'with Retry-After: the wait for the next room (60 s / 3, rounded up)');
    cmp_ok(time - $t0, '<', 0.9, 'at once, not after a wait in the room');
    ($st, $raw, $retry) = get_from($s, '127.0.0.2', '/events?room=made5&since=0');
    is($st, 429, '... and over /events') or diag($raw);
    ($st) = get_from($s, '127.0.0.3', '/recv?room=other1&since=0');
    is($st, 200, 'another address makes its own rooms');
    is($s->sql(q{SELECT count(*) FROM rooms WHERE room LIKE 'made%'}) + 0, 0,
       'a reader makes no room in the database');

    # Joins that make rooms exist in the database: the same cap, kept by
    # chat_join across every worker and responder.
    my $join = sub {
        my ($addr, $room, $nick) = @_;
        my $res = HTTP::Tiny->new(local_address => $addr)->post_form(
            $s->url('/join'), {nick => $nick, room => $room});
        return ($res->{status}, $res->{content}, $res->{headers}{'retry-after'});
    };
    for my $n (1 .. 3) {
        my ($st, $raw) = $join->('127.0.0.4', "joined$n", "maker$n");
        is($st, 200, "a join that makes room $n of 3 is served") or diag($raw);
    }
    ($st, $raw, $retry) = $join->('127.0.0.4', 'joined4', 'maker4');
    is("$st $raw", '429 {"error":"Too many new rooms, slow down"}',
       'the 4th room made by joins in a minute: 429 JSON');
    ok($retry && $retry >= 1 && $retry <= 60, "with Retry-After ($retry s)");
    ($st) = $join->('127.0.0.4', 'joined1', 'maker5');
    is($st, 200, 'a join of a room that exists is not counted');
    ($st) = $join->('127.0.0.5', 'joined5', 'maker6');
    is($st, 200, 'another address makes its own');
    is($s->sql(q{SELECT count(*) FROM rooms WHERE room LIKE 'joined%'}), 4,
       'no room was made for the refused join');
    $s->finish;
}

# --- 3. reads --------------------------------------------------------------------
{
    my $s = Stack->new(workers => 1, env => {RATE_LIMIT => 1, PGCHAT_ADDR_READS => 2,
                                             PGCHAT_DB_TIMEOUT => 60});
    my $id = $s->join_nick('reader');
    $s->post('/send', {id => $id, text => "line $_"}) for 1 .. 3;
    my ($st) = get_from($s, '127.0.0.9', '/history?limit=2');
    is($st, 200, 'a first page opens the archive connection');
    my $pid;
    ok(wait_until(10, sub {
        $pid = $s->sql(q{SELECT pid FROM pg_stat_activity
                         WHERE application_name = 'pgchat-archive'
                           AND datname = current_database()}) }),
       'the archive backend is there') or BAIL_OUT('no archive backend');
    kill 'STOP', $pid;

    # One read runs (stuck in the stopped backend) and the rest queue. An
    # address's reads count until they are answered, so polling with a
    # short client timeout reaches the share.
    my @held = map { get_from_async($s, '127.0.0.2', "/history?limit=1&h=$_", 90) } 1 .. 2;
    my ($retry, $raw, $polls) = (undef, '', 0);
    my $t_429;
    wait_until(30, sub {
        $polls++;
        my $t0 = time;
        ($st, $raw, $retry) = get_from($s, '127.0.0.2', '/history?limit=1', 2);
        $t_429 = time - $t0;
        $st == 429 });
    is("$st $raw", '429 {"error":"Too many reads at once, slow down"}',
       "past its share of reads an address gets 429 JSON ($polls polls)");
    is($retry, 1, '... with Retry-After');
    cmp_ok($t_429, '<', 1, '... at once');
    ($st, $raw) = get_from($s, '127.0.0.2', '/search?q=line', 5);
    is($st, 429, 'its share covers /search too');

    # Other addresses fill the queue: past it, 503 at once.
    my @others = map { get_from_async($s, "127.0.1.$_", '/history?limit=1', 90) } 1 .. 70;
    my (%by, @results);
    ok(wait_until(30, sub {
        (($st, $raw, $retry) = get_from($s, '127.0.2.1', '/history?limit=1', 2))[0] == 503 }),
       'a full queue answers 503');
    is($raw, '{"error":"Too many reads waiting, try again"}', '... JSON');
    is($retry, 1, '... with Retry-After');

    kill 'CONT', $pid;
    # The two held reads race the first poll, so one may be the one refused.
    my @held_st = map { ($_->())[0] } @held;
    is(join(' ', grep { $_ != 200 && $_ != 429 } @held_st), '', "the held reads: @held_st");
    push @results, [$_->()] for @others;
    $by{$_->[0]}++ for @results;
    is(join(' ', grep { $_ != 200 && $_ != 503 } sort keys %by), '',
       'every read is answered 200 or 503: ' . join(', ', map { "$by{$_} x $_" } sort keys %by))
        or diag(join "\n", map { "@$_" } grep { $_->[0] != 200 && $_->[0] != 503 } @results);
    ok($by{200} >= 2, 'what was admitted is answered once the database moves');
    my $t0 = time;
    ($st) = get_from($s, '127.0.0.2', '/history?limit=1');
    is($st, 200, 'the address reads again');
    cmp_ok(time - $t0, '<', 2, '... with no backlog left behind');
    $s->finish;
}

# --- 4. Origin, exactly -------------------------------------------------------
{
    my $s = Stack->new(workers => 1);
    my $port = $s->port;
    my @rows = (
        ["http://127.0.0.1:$port", {}, 200, 'the page\'s own origin'],
        ["HTTP://127.0.0.1:$port", {}, 200, 'scheme and host in another case'],
        ["https://127.0.0.1:$port", {}, 403, 'another scheme'],
        ['http://127.0.0.1', {}, 403, 'no port (80)'],
        ["http://127.0.0.1:${port}0", {}, 403, 'a port that starts like ours'],
        ["http://127.0.0.10:$port", {}, 403, 'a host that starts like ours'],
        ["http://localhost:$port", {}, 403, 'another name of the host'],
        ['null', {}, 403, 'null'],
        ['null', {'Sec-Fetch-Site' => 'same-origin'}, 200, 'null with Sec-Fetch-Site: same-origin'],
    );
    my $n = 0;
    for my $row (@rows) {
        my ($origin, $extra, $want, $what) = @$row;
        $n++;
        my ($st, undef, $raw) = $s->request('POST', '/join', {
            headers => {'Content-Type' => 'application/x-www-form-urlencoded',
                        Origin => $origin, %$extra},
            content => "nick=origin$n"});
        is($st, $want, "Origin $origin ($what): $want") or diag($raw);
        is($raw, '{"error":"Cross-site request refused"}', '... JSON') if $want == 403;
    }
    $s->finish;
}
# --- 5. another room's delivery while one address makes rooms ---------------
{
    # One new room a minute per address, so that the flood's one admitted
    # /recv has pinged and gone before the timing starts (the timing
    # counts parked requests); sends unlimited for the timing's session.
    my $s = Stack->new(workers => 1, env => {RATE_LIMIT => 1, PGCHAT_RECV_TIMEOUT => 5,
                                             PGCHAT_ADDR_ROOMS => 1, PGCHAT_SEND_RATE => 1000,
                                             PGCHAT_SEND_BURST => 1000});
    my $id = $s->join_nick('timer', 'steady');
    my $http = HTTP::Tiny->new(timeout => 30, local_address => '127.0.0.7');
    # Sends $n messages to the room, each while a reader waits for it:
    # the delivery times, sorted.
    my $measure = sub {
        my ($n) = @_;
        my (undef, $j) = $s->get('/recv?room=steady&since=0');
        my $since = $j->{messages}[-1]{timestamp};
        my @took;
        for my $i (1 .. $n) {
            my $w = $s->get_async("/recv?room=steady&since=$since");
            $s->parked(1);
            my $t0 = time;
            my $res = $http->post_form($s->url('/send'), {id => $id, room => 'steady', text => "t$i"});
            die "send: $res->{status}" unless $res->{success};
            my ($st, $json) = $w->wait;
            push @took, time - $t0;
            $since = $json->{messages}[-1]{timestamp};
        }
        return sort { $a <=> $b } @took;
    };
    my $p99 = sub { $_[int(0.99 * $#_)] };
    my $before = $p99->($measure->(60));
    my @flood = map {
        my $k = $_;
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $h = HTTP::Tiny->new(timeout => 10, local_address => '127.0.0.8', keep_alive => 1);
            # 250 new rooms a second each, 500 in all (the attack measured
            # 730): what is timed is what asking for rooms costs the
            # server, not two local processes taking the box's CPU.
            my ($n, $next) = (0, time);
            my $t_end = time + 60;
            while (time < $t_end) {
                $h->get($s->url("/recv?since=0&room=flood${k}x" . $n++));
                $next += 1 / 250;
                sleep($next - time) if $next > time;    # not a wait: the flood's pace
            }
            POSIX::_exit(0);
        }
        $pid;
    } 1 .. 2;
    Stack::wait_for(30, 'the flood refused by the limits',
                    sub { slurp($s->dir . '/access.log') =~ /"GET \/recv" 429/ });
    $s->parked(0);    # the flood's one admitted /recv has had its ping
    my $during = $p99->($measure->(60));
    kill 'KILL', @flood;
    waitpid $_, 0 for @flood;
    my $made = () = slurp($s->dir . '/access.log') =~ /"GET \/recv" 200/g;
    my $refused = () = slurp($s->dir . '/access.log') =~ /"GET \/recv" 429/g;
    diag(sprintf 'another room\'s delivery p99: %.1f ms before, %.1f ms while one address asked for '
                 . 'new rooms (%d refused with 429, %d served)', 1000 * $before, 1000 * $during,
                 $refused, $made);
    cmp_ok($during, '<=', ($before * 2 > 0.2 ? $before * 2 : 0.2),
           'one address making rooms does not slow another room\'s delivery past 2x (or 200 ms)');
    $s->finish;
}
done_testing;
