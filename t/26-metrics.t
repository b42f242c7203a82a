#!/usr/bin/perl
# 26-metrics.t -- /metrics: the whole responder's counters, every worker's
# added up in memory they share, in the Prometheus text format that
# promtool accepts.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;
use Time::HiRes qw(sleep);

my $s = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 20});
my $http = HTTP::Tiny->new(timeout => 10);

# Returns (the raw text, {sample => value}).
sub metrics {
    my $res = $http->get($s->url('/metrics'));
    die "metrics: $res->{status}" unless $res->{status} == 200;
    my %v;
    for (split /\n/, $res->{content}) {
        next if /^#/;
        my ($k, $val) = /^(\S+(?:\{[^}]*\})?) (\S+)$/ or die "bad line: $_";
        $v{$k} = $val;
    }
    return ($res->{content}, \%v, $res);
}
sub value { my ($name) = @_; (metrics())[1]{$name} // 0 }
sub req_key { qq{pgchat_requests_total{endpoint="$_[0]",code="$_[1]"}} }

my ($text, $v, $res) = metrics();
like($res->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
     'the Prometheus text format 0.0.4');
for my $name (qw(pgchat_parked_requests pgchat_requests_total
                 pgchat_messages_stored_total pgchat_send_batch_size
                 pgchat_fanout_seconds pgchat_db_reconnects_total
                 pgchat_db_timeouts_total)) {
    like($text, qr/^# TYPE \Q$name\E (counter|gauge|histogram)$/m, "$name is there");
}
is($v->{pgchat_parked_requests}, 0, 'nothing parked at first');
is($v->{pgchat_db_timeouts_total}, 0, 'no database call timed out');
ok($v->{pgchat_db_reconnects_total} >= 2,
   "every worker's connections are counted ($v->{pgchat_db_reconnects_total})");

# --- requests, by endpoint and code, from every worker ----------------------
my $who0 = $v->{req_key('who', 200)} // 0;
$s->get('/who') for 1 .. 40;
is(value(req_key('who', 200)) - $who0, 40, '40 /who answered, counted once each');
# The counts live outside the workers: those of a worker that dies are
# still there, read through another.
my (undef, $st0) = $s->get('/stats');
my $who1 = value(req_key('who', 200));
kill 'KILL', $st0->{pid};
my $other = Stack::wait_until(20, sub {
    my ($code, $j) = $s->get('/stats');
    $code == 200 && $j->{pid} != $st0->{pid} ? $j->{pid} : 0 });
ok($other, "another worker answers after worker $st0->{pid} was killed");
is(value(req_key('who', 200)), $who1, "... and counts the killed one's /who too");
my $bad0 = value(req_key('search', 400));
$s->get('/search?room=x') for 1 .. 3;
is(value(req_key('search', 400)) - $bad0, 3, 'errors are counted by their code');
$s->get('/no-such-endpoint');
ok(value(req_key('other', 404)) >= 1, 'an unknown path is endpoint "other"');

# --- parked requests, sends, batches, fan-out --------------------------------
my $id = $s->join_nick('mo', 'm');
my (undef, $json) = $s->get('/recv?room=m&since=0');
my $since = $json->{messages}[-1]{timestamp};
my @waiting = map { $s->get_async("/recv?room=m&since=$since") } 1 .. 6;
my $parked = Stack::wait_until(10, sub { value('pgchat_parked_requests') == 6 });
ok($parked, '6 waiting /recv: pgchat_parked_requests is 6, summed over the workers');
my @per_worker = map { JSON::PP->new->decode($http->get($s->url('/stats'))->{content})->{parked} } 1 .. 6;
diag("parked as /stats (one worker's) said: @per_worker");

my $stored0 = value('pgchat_messages_stored_total');
my (undef, $h0) = metrics();
my $batches0 = $h0->{pgchat_send_batch_size_count} // 0;
my $fanouts0 = $h0->{pgchat_fanout_seconds_count} // 0;
$s->post('/send', {id => $id, room => 'm', text => "hello $_"}) for 1 .. 5;
my @got = map { ($_->wait)[0] } @waiting;
is_deeply(\@got, [(200) x 6], 'the waiting readers were answered');
my (undef, $h) = metrics();
is($h->{pgchat_messages_stored_total} - $stored0, 5, '5 sends stored');
ok($h->{pgchat_send_batch_size_count} > $batches0, 'their transactions are in the batch histogram');
is($h->{'pgchat_send_batch_size_bucket{le="+Inf"}'}, $h->{pgchat_send_batch_size_count},
   'the +Inf bucket is the count');
ok(Stack::wait_until(5, sub { (metrics())[1]{pgchat_fanout_seconds_count} > $fanouts0 }),
   'the fan-out to them is in pgchat_fanout_seconds');
ok(Stack::wait_until(5, sub { value('pgchat_parked_requests') == 0 }), 'nothing parked after');
my @le = map { /le="([^"]+)"/ ? $1 : () } grep { /^pgchat_send_batch_size_bucket/ } keys %$h;
my @counts = map { $h->{qq{pgchat_send_batch_size_bucket{le="$_"}}} }
             sort { ($a eq '+Inf') <=> ($b eq '+Inf') || ($a eq '+Inf' ? 0 : $a <=> $b) } @le;
is_deeply([sort { $a <=> $b } @counts], \@counts, 'the buckets are cumulative');

# --- promtool ----------------------------------------------------------------
($text) = metrics();
my $file = $s->dir . '/metrics.txt';
Stack::spew($file, $text);
my $out = `promtool check metrics < '$file' 2>&1`;
is($?, 0, 'promtool check metrics passes') or diag($out);
is($out, '', '... with nothing to say');

my ($st) = $s->request('HEAD', '/metrics');
is($st, 200, 'HEAD /metrics');
($st) = $s->post('/metrics', {});
is($st, 405, 'POST /metrics is refused');

$s->finish;
done_testing;
