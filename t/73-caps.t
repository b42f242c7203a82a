#!/usr/bin/perl
# 73-caps.t -- what one client address can hold of nginx (on by default,
# off with RATE_LIMIT=0):
#   - at most PGCHAT_ADDR_CONNS (100) requests at once: of 400 parked
#     /recv from one address the rest are refused with 429 JSON, while a
#     second address (127.0.0.2: Linux routes all of 127/8 to lo) is served;
#   - a stalled request body or header is dropped within 15 s;
#   - /stats and /metrics answer loopback (127.0.0.1, ::1) only, 403 JSON
#     elsewhere, unless PGCHAT_STATS_ALLOW names the address.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(wait_until);
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time);

# A raw HTTP/1.1 request from $from (an address of 127/8); returns the
# socket, the request written (and the connection left open).
sub open_request {
    my ($s, $from, $request) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port,
                                     LocalAddr => $from, Timeout => 5)
        or die "connect from $from: $!";
    $sock->autoflush(1);
    print $sock $request;
    return $sock;
}

sub recv_request {
    my ($room) = @_;
    return "GET /recv?since=0&room=$room HTTP/1.1\r\nHost: x\r\n\r\n";
}

# What arrived on $sock so far (non-blocking), '' for nothing yet.
sub arrived {
    my ($sock, $wait) = @_;
    my $buf = '';
    while (IO::Select->new($sock)->can_read($wait // 0)) {
        my $n = sysread($sock, my $chunk, 65536);
        last unless $n;
        $buf .= $chunk;
        $wait = 0.05;
    }
    return $buf;
}

# Waits until each of @socks is answered or parked in $s's responder
# (pgchat_parked_requests, plus $others parked before); returns the
# status lines and bodies that came, by socket.
sub settle {
    my ($s, $others, @socks) = @_;
    my %got;
    Stack::wait_for(60, sub { scalar(keys %got) . ' answered and '
                              . ($s->metric('pgchat_parked_requests') - $others)
                              . ' parked of ' . scalar(@socks) }, sub {
        for my $sock (@socks) {
            next if defined $got{$sock};
            my $buf = arrived($sock);
            $got{$sock} = $buf if $buf ne '';
        }
        keys(%got) + $s->metric('pgchat_parked_requests') - $others == @socks;
    });
    return \%got;
}

# A whole answer to one request, read until the server closes or $timeout.
sub get_from {
    my ($s, $from, $path) = @_;
    my $sock = open_request($s, $from, "GET $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    my $buf = '';
    my $end = time + 30;
    while (time < $end && IO::Select->new($sock)->can_read($end - time)) {
        my $n = sysread($sock, my $chunk, 65536);
        last unless $n;
        $buf .= $chunk;
    }
    my ($status) = $buf =~ m{^HTTP/1\.1 (\d+)};
    my ($body) = $buf =~ /\r\n\r\n(.*)\z/s;
    return ($status // 0, $body // '');
}

# --- one address, 400 parked requests -------------------------------------
{
    my $s = Stack->new(workers => 2, env => {RATE_LIMIT => 1, PGCHAT_RECV_TIMEOUT => 20});
    my @socks = map { open_request($s, '127.0.0.1', recv_request('park')) } 1 .. 400;
    my (%status, $body429, @parked);
    my $answers = settle($s, 0, @socks);
    for my $sock (@socks) {
        my $got = $answers->{$sock} // '';
        if ($got =~ m{^HTTP/1\.1 (\d+)}) {
            $status{$1}++;
            ($body429) = $got =~ /\r\n\r\n(.*)\z/s if $1 == 429;
        } else {
            push @parked, $sock;
        }
    }
    my $parked = @parked;
    ok($parked >= 90 && $parked <= 100,
       "of 400 waiting requests from one address at most 100 wait ($parked)");
    is($status{429} // 0, 400 - $parked, 'the others are refused with 429 at once')
        or diag(explain \%status);
    like($body429 // '', qr/^\{"error":"Too many requests, slow down"\}/, 'with a JSON error');

    my ($st, $body) = get_from($s, '127.0.0.2', '/who');
    is($st, 200, 'meanwhile a second address (127.0.0.2) is served') or diag($body);
    my @other = map { open_request($s, '127.0.0.2', recv_request('park')) } 1 .. 20;
    my @answered = values %{settle($s, $parked, @other)};
    is(scalar @answered, 0, 'and may park 20 requests of its own');
    # From a third address: 127.0.0.1 holds its 100 and may not join.
    my (undef, $joined) = get_from($s, '127.0.0.3', '/join?nick=waker&room=park');
    my ($id) = $joined =~ /"id":"([^"]+)"/ or die "cannot join: $joined";
    my @woken = grep { arrived($_, 10) =~ m{^HTTP/1\.1 200} } @other[0 .. 4];
    is(scalar @woken, 5, 'which the next message in the room answers');
    close $_ for @socks, @other;

    # A stalled body and a stalled header, at once: dropped after 10 s.
    my @stalled = map {
        my ($what, $request) = @$_;
        {what => $what, sock => open_request($s, '127.0.0.2', $request)};
    } (['body', "POST /send HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                . "Content-Length: 100\r\n\r\nid="],
       ['header', "GET /who HTTP/1.1\r\nHost: x\r\nX-Slow: "]);
    my $t = time;
    while (time - $t < 20 && grep { !defined $_->{took} } @stalled) {
        my $sel = IO::Select->new(map { $_->{sock} } grep { !defined $_->{took} } @stalled);
        for my $ready ($sel->can_read(0.5)) {
            my ($c) = grep { $_->{sock} == $ready } @stalled;
            my $n = sysread($ready, my $chunk, 65536);
            $c->{took} = time - $t unless $n;
        }
    }
    for my $c (@stalled) {
        my $took = $c->{took};
        ok(defined $took && $took < 15, sprintf('a stalled request %s is dropped within 15 s (%s s)',
                                               $c->{what}, defined $took ? sprintf('%.1f', $took) : 'never'));
        ok(($took // 99) > 5, 'but not at once');
    }
    $s->finish;
}

# --- RATE_LIMIT=0: no cap ---------------------------------------------------
{
    my $s = Stack->new(workers => 1, env => {RATE_LIMIT => 0, PGCHAT_RECV_TIMEOUT => 20});
    my @socks = map { open_request($s, '127.0.0.1', recv_request('free')) } 1 .. 150;
    my @answered = values %{settle($s, 0, @socks)};
    is(scalar @answered, 0, 'RATE_LIMIT=0: 150 waiting requests from one address all wait');
    close $_ for @socks;
    $s->finish;
}

# --- /stats for loopback only ------------------------------------------------
{
    my $s = Stack->new(workers => 1, env => {RATE_LIMIT => 1});
    my ($st, $body) = get_from($s, '127.0.0.1', '/stats');
    is($st, 200, '/stats answers 127.0.0.1');
    for my $path ('/stats', '/metrics', '/stats?x=1', '/x/stats') {
        ($st, $body) = get_from($s, '127.0.0.2', $path);
        is("$st $body", '403 {"error":"Forbidden"}', "$path is refused to 127.0.0.2 with a JSON 403");
    }
    ($st) = get_from($s, '127.0.0.2', '/healthz');
    is($st, 200, '/healthz still answers everyone');
    $s->finish;

    $s = Stack->new(workers => 1, env => {RATE_LIMIT => 1, PGCHAT_STATS_ALLOW => '10.0.0.0/8, 127.0.0.2'});
    ($st, $body) = get_from($s, '127.0.0.2', '/stats');
    is($st, 200, 'PGCHAT_STATS_ALLOW=10.0.0.0/8, 127.0.0.2: /stats answers 127.0.0.2');
    ($st) = get_from($s, '127.0.0.3', '/stats');
    is($st, 403, 'but not 127.0.0.3');
    $s->finish;
}

done_testing;
