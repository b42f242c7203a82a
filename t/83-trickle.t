#!/usr/bin/perl
# 83-trickle.t -- a FastCGI peer that sends a request a byte at a time is
# cut off when the whole request has taken SERVER_PARTIAL_MS (10 s) from its
# first byte: the bound is a total, not a gap between reads. nginx buffers
# a client's body before it passes a request on, so only a peer talking to
# the socket itself can trickle; the responder must not be held by one.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Stack;
use Test::More;
use Time::HiRes qw(time sleep);

my $s = Stack->new(workers => 1);
my $id = $s->join_nick('erin');

my $raw = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $s->{sockets}[0])
    or die "connect: $!";
my $params = join '', map { pack('CC', length $_->[0], length $_->[1]) . $_->[0] . $_->[1] }
    [REQUEST_METHOD => 'GET'], [DOCUMENT_URI => '/who'], [QUERY_STRING => ''],
    [PADDING => 'p' x 150];
my $bytes = pack('CCnnCC', 1, 1, 1, 8, 0, 0) . pack('nCx5', 1, 0)
          . pack('CCnnCC', 1, 4, 1, length $params, 0, 0) . $params;

# One byte every 0.4 s: each read is well inside any per-read bound, and the
# whole would take over a minute. The pause is the attack under test.
my $t0 = time;
my ($closed_at, $sent, $slowest) = (undef, 0, 0);
my $sel = IO::Select->new($raw);
while (time - $t0 < 30 && $sent < length $bytes) {
    if ($sel->can_read(0)) {
        my $n = sysread($raw, my $buf, 4096);
        if (!$n) { $closed_at = time - $t0; last }
    }
    my $w = syswrite($raw, substr($bytes, $sent, 1));
    if (!defined $w) { $closed_at = time - $t0; last }
    $sent += $w;
    my $q0 = time;
    my ($st) = $s->get('/who');
    die "/who answered $st meanwhile" unless $st == 200;
    $slowest = time - $q0 if time - $q0 > $slowest;
    sleep 0.4;
}
ok(defined $closed_at, 'the trickling peer is cut off')
    or diag("still open after $sent of " . length($bytes) . ' bytes');
cmp_ok($closed_at // 99, '>=', 9, 'not before the bound');
cmp_ok($closed_at // 99, '<', 14, 'within the bound of the whole request from its first byte (10 s) and a scan');
cmp_ok($sent, '<', length $bytes, 'before the request was whole');
cmp_ok($slowest, '<', 1, sprintf('others are served meanwhile (slowest /who %.3f s)', $slowest));
my ($st) = $s->post('/send', {id => $id, text => 'after the trickle'});
is($st, 200, 'and the responder serves on');
$s->finish;
done_testing;
