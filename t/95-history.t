#!/usr/bin/perl
# 95-history.t -- exactness shown over random faults, in the manner of
# Jepsen and Elle: clients join, send (with a mid, retrying as the browser
# does), follow rooms over /recv and /events, read afresh and page
# /history against two responders of two workers, while a nemesis stops,
# terminates and restarts what they depend on; then a checker reads the
# recorded history against the table (t/lib/History/*.pm; the properties
# are listed in History/Checker.pm).
#
# First the checker is shown to fail: doctored histories, one per
# property. Then a few fixed seeds and one random seed, each printed, each
# replayed by PGCHAT_HISTORY_SEED=N. PGCHAT_SOAK_S=300 runs seeds one
# after another for that long instead (make soak), with a summary.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use History::Checker;
use History::Net;
use History::Run;
use Test::More;
use Time::HiRes qw(time);

# --- the checker fails where it should ----------------------------------------

# A small history that breaks nothing: two sends acknowledged, a follower
# that saw the room, a fresh read, a history page, a join and a part.
sub clean_history {
    my @table = (
        {room => 'r', seq => 1, ts => 1000, nick => 'a', type => 'join', text => undef, mid => undef},
        {room => 'r', seq => 2, ts => 1001, nick => 'a', type => 'msg', text => 'one', mid => 'a-1'},
        {room => 'r', seq => 3, ts => 1002, nick => 'a', type => 'msg', text => 'two', mid => 'a-2'},
        {room => 'r', seq => 4, ts => 1003, nick => 'a', type => 'part', text => undef, mid => undef},
    );
    my $msg = sub { my $r = $table[$_[0]]; +{map { $_ => $r->{$_} } qw(ts nick type text mid)} };
    my @ops = (
        {id => 0, kind => 'join', actor => 'w0', room => 'r', nick => 'a', t0 => 0, t1 => 0.1, status => 200},
        {id => 1, kind => 'send', actor => 'w0', room => 'r', nick => 'a', mid => 'a-1', text => 'one',
         t0 => 1, t1 => 1.1, status => 200, ts => 1001, attempts => [{status => 200, ts => 1001}]},
        {id => 2, kind => 'send', actor => 'w0', room => 'r', nick => 'a', mid => 'a-2', text => 'two',
         t0 => 2, t1 => 2.1, status => 200, ts => 1002, attempts => [{status => 503}, {status => 200, ts => 1002}]},
        {id => 3, kind => 'read', actor => 'w0', room => 'r', since => 1000, t0 => 5, t1 => 5.1,
         status => 200, msgs => [$msg->(1), $msg->(2)], gap => 0},
        {id => 4, kind => 'history', actor => 'w0', room => 'r', before => 1003, limit => 2,
         t0 => 6, t1 => 6.1, status => 200, msgs => [$msg->(1), $msg->(2)], more => 1},
        {id => 5, kind => 'part', actor => 'w0', room => 'r', nick => 'a', t0 => 7, t1 => 7.1, status => 200},
    );
    my $follower = {name => 'f0', room => 'r', transport => 'recv', since0 => 1, t_start => 0,
                    cursor => 1003, gaps => [],
                    got => [map { +{%{$msg->($_)}, t => 1 + $_} } 0 .. 3],
                    polls => [{t0 => 0, t1 => 3, status => 200, since => 1}]};
    return {ops => \@ops, followers => [$follower], faults => [], table => \@table,
            heads => {r => 1003}, params => {db_timeout => 2, recv_timeout => 5, t_start => 0}};
}

sub properties {
    my ($h) = @_;
    my %p = map { $_->{property} => 1 } History::Checker->new(history => $h)->check;
    return join ',', sort keys %p;
}

is(properties(clean_history()), '', 'the checker finds nothing wrong in a clean history');

# Each doctoring breaks one property; the checker must name exactly it.
my @doctored = (
    [1, 'a duplicate on retry: an acknowledged send stored twice', sub {
        push @{$_[0]{table}}, {%{$_[0]{table}[2]}, ts => 1004, seq => 5};
        $_[0]{heads}{r} = 1004;
        push @{$_[0]{followers}[0]{got}}, {%{$_[0]{table}[4]}, t => 9};
    }],
    [1, 'an acknowledged send that was never stored', sub {
        splice @{$_[0]{table}}, 2, 1;
        splice @{$_[0]{followers}[0]{got}}, 2, 1;
        $_[0]{ops}[3]{msgs} = [$_[0]{ops}[3]{msgs}[0]];
        $_[0]{ops}[4]{msgs} = [$_[0]{ops}[4]{msgs}[0]];
        $_[0]{ops}[4]{limit} = 1;
        $_[0]{ops}[3]{since} = 1000;
        $_[0]{ops}[4]{before} = 1002;
        $_[0]{ops}[4]{more} = 1;
        $_[0]{ops}[2]{t1} = 100;    # acknowledged after every read
    }],
    [2, 'a send answered 503 stored twice', sub {
        $_[0]{ops}[2]{status} = 503;
        $_[0]{ops}[2]{attempts} = [{status => 503}];
        push @{$_[0]{table}}, {%{$_[0]{table}[2]}, ts => 1004, seq => 5};
        $_[0]{heads}{r} = 1004;
        push @{$_[0]{followers}[0]{got}}, {%{$_[0]{table}[4]}, t => 9};
    }],
    [3, 'a skipped message: a follower never got one', sub {
        splice @{$_[0]{followers}[0]{got}}, 1, 1;
    }],
    [3, 'a message delivered twice to a follower', sub {
        splice @{$_[0]{followers}[0]{got}}, 2, 0, $_[0]{followers}[0]{got}[1];
    }],
    [3, 'messages out of order along a cursor', sub {
        @{$_[0]{followers}[0]{got}}[1, 2] = @{$_[0]{followers}[0]{got}}[2, 1];
    }],
    [4, 'a window kept after a reconnect: a fresh read long after the send misses it', sub {
        $_[0]{ops}[3]{msgs} = [$_[0]{ops}[3]{msgs}[0]];
        $_[0]{ops}[3]{t0} = 30;    # past any bound
        $_[0]{ops}[3]{t1} = 30.1;
    }],
    [5, 'a /history page that skips a message', sub {
        $_[0]{ops}[4]{msgs} = [$_[0]{ops}[4]{msgs}[1]];
        $_[0]{ops}[4]{limit} = 1;
        $_[0]{ops}[4]{before} = 1002;
    }],
    [6, 'a missed part: an acknowledged part not stored', sub {
        pop @{$_[0]{table}};
        pop @{$_[0]{followers}[0]{got}};
        $_[0]{heads}{r} = 1002;
    }],
    [7, 'a parked /recv never answered', sub {
        $_[0]{followers}[0]{polls}[0]{t1} = 40;
    }],
);
for my $d (@doctored) {
    my ($property, $what, $doctor) = @$d;
    my $h = clean_history();
    $doctor->($h);
    is(properties($h), $property, "the checker catches $what (property $property)");
}
{
    # Within the staleness bound a miss is counted, not failed; past it
    # only because of a fault it is not a violation either.
    my $h = clean_history();
    $h->{ops}[3]{msgs} = [$h->{ops}[3]{msgs}[0]];
    $h->{ops}[3]{t0} = 2.5;
    $h->{ops}[3]{ryw} = 2;
    my $c = History::Checker->new(history => $h);
    is(scalar($c->check), 0, 'a read 0.4 s after the send it misses is within the steady bound');
    is($c->stats->{ryw_misses}, 1, 'and is counted as a read-your-writes miss');
    $h->{ops}[3]{t0} = 5;
    $h->{faults} = [{kind => 'stop-listen', t0 => 1.5, t1 => 3}];
    is(scalar(History::Checker->new(history => $h)->check), 0,
       'a read 2.9 s after the send is within the bound of a fault that ended 2 s before it');
    $h->{ops}[3]{t0} = 8.5;
    is(properties($h), 4, 'and 5.5 s after the fault ended it is not');
    # Soak seed 98774821: a fresh read parked during a PostgreSQL restart
    # was answered with a ping by its worker as a killed responder's
    # workers went away; the ping is no stale answer.
    $h->{ops}[3]{msgs} = [];
    $h->{ops}[3]{ping} = 1;
    $h->{ops}[3]{t0} = 2.5;
    $h->{ops}[3]{t1} = 7;
    $h->{faults} = [{kind => 'pg-immediate', t0 => 2.6, t1 => 5},
                    {kind => 'kill-responder', t0 => 6.5, t1 => 6.9}];
    is(properties($h), '', 'a read ended by a ping during faults claims nothing');
    $h->{faults} = [];
    is(properties($h), 4, 'but a ping to a reader behind, with no fault near, is stale');
}
{
    # A parked /recv held up by a paused responder (its parent and
    # workers stopped) is not a liveness violation; by anything else it is.
    my $h = clean_history();
    $h->{followers}[0]{polls}[0]{t1} = 40;
    $h->{faults} = [{kind => 'pause-responder', t0 => 1, t1 => 39}];
    is(properties($h), '', 'a /recv held up by a paused responder is excused');
    $h->{faults} = [{kind => 'restart-pgbouncer', t0 => 1, t1 => 39}];
    is(properties($h), 7, 'and one held up during a PgBouncer restart is not');
}

# --- seeded runs against the real stack -----------------------------------------

my @seeds;
my $soak = $ENV{PGCHAT_SOAK_S};
if (defined $ENV{PGCHAT_HISTORY_SEED}) {
    @seeds = split /,/, $ENV{PGCHAT_HISTORY_SEED};
} elsif (!$soak) {
    @seeds = (1, 2, 3, int(rand(1e9)));
}
# A soak's runs are longer and its faults closer: the calm tail, the
# final reads and a stack's start come once in 120 s, not once in 14, and
# a fault follows the last one's healing after 0.05-0.35 s rather than
# 0.5-2.5 s (each fault still has its own bound in the checker; only the
# reads of the calm tail and the final reads are held to the steady one).
# PGCHAT_HISTORY_S and PGCHAT_HISTORY_GAP=lo,hi set them for any run.
my $seconds = $ENV{PGCHAT_HISTORY_S} // ($soak ? 120 : 14);
my $gap = $ENV{PGCHAT_HISTORY_GAP} ? [split /,/, $ENV{PGCHAT_HISTORY_GAP}]
        : $soak ? [0.05, 0.35] : undef;
# Even seeds run with a PgBouncer for the writer (and restart it among the
# faults); PGCHAT_HISTORY_PGBOUNCER=0 or 1 decides for every seed.
sub pgbouncer { $ENV{PGCHAT_HISTORY_PGBOUNCER} // ($_[0] % 2 == 0 ? 1 : 0) }
# The network to the database that net-slow and net-partition act on,
# where the test can make one (root, iproute2, the kernel's tbf);
# PGCHAT_HISTORY_NET=0 leaves it out.
my ($net, $no_net) = ($ENV{PGCHAT_HISTORY_NET} // 1) ? History::Net->make : (undef, 'PGCHAT_HISTORY_NET=0');
diag("net-slow and net-partition left out: $no_net") unless $net;
my (%total, %kinds, @summaries);
my $end = time + ($soak // 0);
my $next = int(rand(1e9));
while (@seeds || ($soak && time < $end)) {
    my $seed = @seeds ? shift @seeds : $next++;
    note("history run, seed $seed");
    my $r = History::Run::run(seed => $seed, seconds => $seconds, pgbouncer => pgbouncer($seed),
                              net => $net, $gap ? (gap => $gap) : (),
                              $ENV{PGCHAT_HISTORY_KINDS}
                                  ? (kinds => [split /,/, $ENV{PGCHAT_HISTORY_KINDS}]) : ());
    note($r->{summary});
    push @summaries, $r->{summary};
    $total{runs}++;
    $total{ops} += @{$r->{history}{ops}};
    $total{faults} += $_ for values %{$r->{faults}};
    $kinds{$_} += $r->{faults}{$_} for keys %{$r->{faults}};
    $total{violations} += @{$r->{violations}};
    $total{$_} += $r->{stats}{$_} // 0 for qw(acked retried unacked unacked_stored delivered reads final_reads ryw_misses ryw_reads within_bound);
    $total{pgbouncer}++ if pgbouncer($seed);
    ok(!@{$r->{violations}}, "seed $seed: no violation in "
       . scalar(@{$r->{history}{ops}}) . ' operations under ' . scalar(@{$r->{history}{faults}}) . ' faults')
        or diag("seed $seed\n" . History::Run::report($r)
                . 'the whole history: ' . History::Run::dump($r, "$FindBin::Bin/out"));
    note('the whole history: ' . History::Run::dump($r, "$FindBin::Bin/out"))
        if $ENV{PGCHAT_HISTORY_DUMP} && !@{$r->{violations}};
    ok(!@{$r->{sanitizer}}, "seed $seed: the responders ran without sanitizer reports")
        or diag(join "\n", @{$r->{sanitizer}});
}
diag(sprintf('soak: %d runs (%d through PgBouncer), %d ops, %d acknowledged sends (%d after a retry), %d unacknowledged '
             . '(%d of them stored), %d deliveries, %d reads (%d final), %d faults (%s), '
             . '%d violations; misses within the bound %d, read-your-writes misses %d of %d',
             map({ $total{$_} // 0 } qw(runs pgbouncer ops acked retried unacked unacked_stored delivered reads final_reads faults)),
             join(', ', map { "$_ $kinds{$_}" } sort keys %kinds),
             map({ $total{$_} // 0 } qw(violations within_bound ryw_misses ryw_reads))))
    if $soak;

done_testing;
