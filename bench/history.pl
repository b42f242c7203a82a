#!/usr/bin/perl
# bench/history.pl -- the measuring half of bench/history (which sets up
# the cluster): fills a room, times /history pages at three depths and
# /search for five kinds of query.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use HTTP::Tiny;
use JSON::PP;
use Stack;
use Time::HiRes qw(time);

my $total = $ENV{BENCH_HISTORY_MESSAGES} // 1_000_000;
my $reps = $ENV{BENCH_HISTORY_REQUESTS} // 500;
my $s = Stack->new(workers => 2, env => {PGCHAT_LOG_LEVEL => 'info'});

my $t0 = time;
my $chunk = 100_000;
for (my $done = 0; $done < $total; $done += $chunk) {
    my $n = $total - $done < $chunk ? $total - $done : $chunk;
    $s->sql(qq{SELECT chat_post('big', array_fill('filler'::text, ARRAY[$n]),
        array_fill('msg'::text, ARRAY[$n]),
        ARRAY(SELECT 'message ' || i || ' of the deep room'
              FROM generate_series($done + 1, $done + $n) i))});
}
$s->sql('VACUUM ANALYZE messages');
printf "history: %d messages stored in one room in %.1f s\n", $total, time - $t0;

my @ts = split /\n/, $s->sql(q{SELECT min(ts), max(ts) FROM messages WHERE room = 'big'}) =~ s/\|/\n/r;
my ($first, $last) = @ts;
my %depth = (
    newest => $last + 1,
    middle => int(($first + $last) / 2),
    first  => $first + 100,
);
my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 30);
printf "%-8s %8s %8s %8s %8s\n", 'depth', 'pages', 'p50 ms', 'p99 ms', 'max ms';
for my $name (qw(newest middle first)) {
    my @ms;
    for my $i (1 .. $reps) {
        my $before = $depth{$name} - ($i % 50);
        my $t = time;
        my $res = $http->get($s->url("/history?room=big&before=$before&limit=50"));
        push @ms, (time - $t) * 1000;
        die "history: $res->{status} $res->{content}" unless $res->{status} == 200;
    }
    @ms = sort { $a <=> $b } @ms;
    printf "%-8s %8d %8.2f %8.2f %8.2f\n", $name, $reps, $ms[int(@ms * 0.5)],
        $ms[int(@ms * 0.99)], $ms[-1];
}

# Every filler is "message N of the deep room": a number is a word found
# once, "deep" is in every message, "zebra" in none, and "deep -room"
# matches none of the million that hold "deep", the worst case: the index
# gives every row with "deep" and each must be rechecked.
my $sreps = $ENV{BENCH_SEARCH_REQUESTS} // 200;
my @kinds = (
    ['one word, one match', sub { int(rand($total)) + 1 }, $sreps],
    ['a phrase, one match', sub { '"message ' . (int(rand($total)) + 1) . '"' }, $sreps],
    ['no match', sub { 'zebra' }, $sreps],
    ['in every message', sub { 'deep' }, $sreps],
    ['all but -excluded', sub { 'deep -room' }, $ENV{BENCH_SEARCH_WORST} // 20],
);
printf "%-20s %8s %8s %8s %8s\n", 'search', 'requests', 'p50 ms', 'p99 ms', 'max ms';
for my $k (@kinds) {
    my ($name, $query, $n) = @$k;
    my @ms;
    for my $i (1 .. $n) {
        my $q = $http->www_form_urlencode({room => 'big', q => $query->(), limit => 20});
        my $t = time;
        my $res = $http->get($s->url("/search?$q"));
        push @ms, (time - $t) * 1000;
        die "search: $res->{status} $res->{content}" unless $res->{status} == 200;
    }
    @ms = sort { $a <=> $b } @ms;
    printf "%-20s %8d %8.2f %8.2f %8.2f\n", $name, $n, $ms[int(@ms * 0.5)],
        $ms[int(@ms * 0.99)], $ms[-1];
}
$s->finish(no_test => 1);
