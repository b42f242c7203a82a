#!/usr/bin/perl
# 81-search-flood.t -- one address searching at its limit in a room built to
# be expensive does not slow another address's /history, and leaves no
# backlog behind.
#
# The room: 20,000 messages of 4,000 bytes, "aa b1 aa b2 ...", so that
# "aa" is in every one and "aa -b1" must read and recheck them all. From
# 127.0.0.2, searchers ask for such queries (and "-aa", which is refused)
# faster than nginx's search limit lets through, for 15 s; meanwhile
# 127.0.0.3 pages /history of another room and times each page. What
# stands between them: nginx's per-address search limit (2 a second,
# bursts of 10), the responder's per-address reads in flight
# (PGCHAT_ADDR_READS, 429), its bounded queue (503), /history and /search
# on threads and connections of their own, statement_timeout.
#
# Asserted: /history's p99 during the flood under 100 ms; a /history right
# after it as fast; a search from a third address right after it answered
# within the database bound (no queue left over); every 429 and 503 with
# Retry-After; "-aa" refused with 400. The figures are printed (diag).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(slurp spew);
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(_exit);
use Test::More;
use Time::HiRes qw(time sleep);

my $FLOOD_S = 15;
my $SEARCHERS = 8;         # attacker's processes, each one search at a time
my $HISTORY_EVERY = 0.1;   # the other address's pace: 10 pages a second
my $DB_TIMEOUT = 5;        # PGCHAT_DB_TIMEOUT's default: a search's bound

my $s = Stack->new(workers => 2, env => {RATE_LIMIT => 1});
my $dir = $s->dir;

# The expensive room, and a calm one to page through.
my $t0 = time;
$s->sql(<<'SQL');
INSERT INTO rooms (room, last_ts, last_seq)
VALUES ('big', 1700000020000, 20000), ('calm', 1700000002000, 2000);
INSERT INTO messages (room, seq, ts, nick, type, text)
SELECT 'big', g, 1700000000000 + g, 'bot', 'msg', left(t, 4000)
FROM generate_series(1, 20000) g,
     (SELECT string_agg('aa b' || i, ' ') AS t FROM generate_series(1, 600) i) words;
INSERT INTO messages (room, seq, ts, nick, type, text)
SELECT 'calm', g, 1700000000000 + g, 'carol', 'msg', 'hello number ' || g
FROM generate_series(1, 2000) g;
ANALYZE messages;
SQL
diag(sprintf 'the rooms built in %.1f s', time - $t0);
is($s->sql(q{SELECT count(*) || ' ' || min(length(text)) FROM messages WHERE room = 'big'}),
   '20000 4000', 'the big room: 20,000 messages of 4,000 bytes');

my @QUERIES = ('aa -b1', 'aa aa', '-aa', 'aa b7 -b300', '"aa b1" -b2', 'b599 -aa b1', 'aa', 'zz');

sub client {
    my ($addr) = @_;
    return HTTP::Tiny->new(timeout => 60, keep_alive => 1, local_address => $addr);
}

# One timed GET: [status, seconds, Retry-After, body].
sub timed {
    my ($http, $path) = @_;
    my $t = time;
    my $res = $http->get($s->url($path));
    return [$res->{status}, time - $t, $res->{headers}{'retry-after'}, $res->{content}];
}

# Runs $code in a child that writes its results (a list of timed()) to $file.
sub child {
    my ($file, $code) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    my @rows = eval { $code->() };
    spew($file, JSON::PP->new->encode(\@rows));
    _exit(0);
}
sub results { @{decode_json(slurp($_[0]) || '[]')} }

my $end = time + $FLOOD_S;
my @pids;
for my $n (1 .. $SEARCHERS) {
    push @pids, child("$dir/search$n.json", sub {
        my $http = client('127.0.0.2');
        my @rows;
        for (my $i = $n; time < $end; $i++) {
            my $q = $QUERIES[$i % @QUERIES];
            my $r = timed($http, "/search?room=big&limit=50&q=" . $http->www_form_urlencode({q => $q}) =~ s/^q=//r);
            push @$r, $q;
            push @rows, $r;
            # Refused at once: ask again at once, as a flood would; only
            # never faster than 20 a second per searcher.
            sleep 0.05;
        }
        return @rows;
    });
}
push @pids, child("$dir/history.json", sub {
    my $http = client('127.0.0.3');
    my @rows;
    my $before = 1700000002001;
    for (my $next = time; time < $end; $next += $HISTORY_EVERY) {
        sleep($next - time) if $next > time;
        my $r = timed($http, "/history?room=calm&limit=50&before=$before");
        push @rows, $r;
        $before = $r->[0] == 200 && $before > 1700000000200 ? $before - 50 : 1700000002001;
    }
    return @rows;
});
waitpid $_, 0 for @pids;

# Right after: the other address again, and a search from a third.
my $after = timed(client('127.0.0.3'), '/history?room=calm&limit=50');
my $fresh = timed(client('127.0.0.4'), '/search?room=calm&q=hello');

my @history = results("$dir/history.json");
my @search = map { results("$dir/search$_.json") } 1 .. $SEARCHERS;

sub pct {
    my ($p, @x) = @_;
    @x = sort { $a <=> $b } @x;
    return $x[int($p * $#x + 0.5)] // -1;
}
sub ms { sprintf '%.1f', 1000 * $_[0] }

my @hlat = map { $_->[1] } @history;
my %hst;
$hst{$_->[0]}++ for @history;
diag(sprintf '/history from 127.0.0.3 during the flood: %d pages, p50 %s ms, p99 %s ms, max %s ms (%s)',
             scalar @history, ms(pct(0.5, @hlat)), ms(pct(0.99, @hlat)), ms(pct(1, @hlat)),
             join(' ', map { "$_: $hst{$_}" } sort keys %hst));
my (%sst, %slat);
for (@search) {
    $sst{$_->[0]}++;
    push @{$slat{"$_->[0]"}}, $_->[1];
}
diag(sprintf 'searches from 127.0.0.2: %d asked; %s', scalar @search,
             join('; ', map { sprintf '%s: %d (p50 %s ms, max %s ms)', $_, $sst{$_},
                              ms(pct(0.5, @{$slat{$_}})), ms(pct(1, @{$slat{$_}})) } sort keys %sst));
for my $q (@QUERIES) {
    my @ok = map { $_->[1] } grep { $_->[4] eq $q && $_->[0] == 200 } @search;
    diag(sprintf '  "%s": %d answered 200, p50 %s ms, max %s ms', $q, scalar @ok,
                 ms(pct(0.5, @ok)), ms(pct(1, @ok))) if @ok;
}
diag(sprintf 'right after: /history %d in %s ms, a search from 127.0.0.4 %d in %s ms',
             $after->[0], ms($after->[1]), $fresh->[0], ms($fresh->[1]));

# Where the slowest pages spent their time: nginx's request time against
# the responder's (the access log), and how busy the machine was.
{
    my @lines = sort { $b->[0] <=> $a->[0] }
        map { [(split)[-2], (split)[-1]] }
        grep { /^127\.0\.0\.3 .*"GET \/history"/ } split /\n/, $s->log('access');
    diag('the slowest /history pages, request and responder time (s): '
         . join(', ', map { "$_->[0]/$_->[1]" } @lines[0 .. ($#lines < 4 ? $#lines : 4)]));
    diag('load average: ' . slurp('/proc/loadavg'));
}

ok(@history >= $FLOOD_S / $HISTORY_EVERY * 0.5, scalar(@history) . ' pages of /history timed');
is_deeply([keys %hst], [200], 'every one answered 200');
cmp_ok(pct(0.99, @hlat), '<', 0.100, "/history's p99 during the flood is under 100 ms");
ok($sst{200} && $sst{429}, 'the searcher was answered, and refused past its limit');
my @no_retry = grep { ($_->[0] == 429 || $_->[0] == 503) && ($_->[2] // '') !~ /^[1-9]\d*$/ } @search;
is(scalar @no_retry, 0, 'every 429 and 503 says when to retry (Retry-After)')
    or diag(explain([@no_retry[0 .. ($#no_retry < 4 ? $#no_retry : 4)]]));
my @neg = grep { $_->[4] eq '-aa' && $_->[0] != 429 && $_->[0] != 503 } @search;
ok(@neg && !grep({ $_->[0] != 400 || $_->[3] ne '{"error":"Query needs a word to find"}' } @neg),
   sprintf('"-aa" alone is refused: 400 "Query needs a word to find" (%d times)', scalar @neg));
is($after->[0], 200, 'a /history right after the flood is answered');
cmp_ok($after->[1], '<', 0.100, '  in under 100 ms');
is($fresh->[0], 200, 'a search from another address right after the flood is answered');
cmp_ok($fresh->[1], '<', $DB_TIMEOUT + 1, "  within the database bound ($DB_TIMEOUT s): no backlog left");

$s->finish;
done_testing;
