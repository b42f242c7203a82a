#!/usr/bin/perl
# 93-failover.t -- the database primary is lost, and Patroni fails over by
# itself: an etcd and Patroni-managed PostgreSQL 15 nodes in
# synchronous_mode (t/lib/HaCluster.pm), the responder on a multi-host URL
# with target_session_attrs=read-write. Two nodes, as the smallest such
# cluster: each kill waits until the killed node has recovered and rejoined
# as the synchronous standby (about 10 s here). PGCHAT_HA_NODES=3 runs the
# same with a third, which becomes the standby while the killed one rejoins
# (no faster on an idle machine: 90 s either way). A sender stores messages with mids,
# retrying each until 200 as the client does; readers follow their cursors
# on /recv and on /events. The primary's postmaster is killed with kill -9
# again and again, then a planned switchover: every acknowledged message is
# stored exactly once, in order, and every reader sees each once, in order.
# Also: bin/migrate on a standby says which setting is missing.
#
# Then the primary's whole node is lost (Patroni with it: the leader key
# lives until ttl runs out) and comes back.
#
# PGCHAT_FAILOVERS (default 5) is the number of kills.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use HaCluster;
use Stack qw(slurp);
use Swarm;
use Test::More;
use Time::HiRes qw(sleep time);

my $KILLS = $ENV{PGCHAT_FAILOVERS} // 5;
my $RECV_TIMEOUT = 1.5;    # the pings' period
my $JSON = JSON::PP->new->utf8;
my $t_start = time;

my $ha = HaCluster->new(nodes => $ENV{PGCHAT_HA_NODES} // 2);
note(sprintf 'cluster up in %.1f s: primary %s', time - $t_start, $ha->primary);
$ha->create_db('chat');

# --- bin/migrate on a standby ----------------------------------------------
{
    my $primary = $ha->primary;
    my ($standby) = $ha->others($primary);
    # The standby has replayed CREATE DATABASE (else migrate's error would
    # be "database does not exist", not the one tested here).
    Stack::wait_until(60, sub {
        (eval { Stack::psql($ha->admin_url($standby), q{SELECT count(*) FROM pg_database
                                                         WHERE datname = 'chat'}) } // 0) == 1 })
        or die "the standby never had the database chat\n";
    my $migrate = sub {
        my ($url) = @_;
        my $out = `DATABASE_URL='$url' $Stack::TOP/bin/migrate 2>&1`;
        return ($? >> 8, $out);
    };
    my ($rc, $out) = $migrate->($ha->url('chat', order => [$standby], attrs => ''));
    isnt($rc, 0, 'bin/migrate fails on a standby');
    like($out, qr/standby.*target_session_attrs=read-write/s,
         'and says that target_session_attrs=read-write is missing')
        or diag($out);
    unlike($out, qr/read-only transaction/, 'not PostgreSQL\'s "read-only transaction"');
    ($rc, $out) = $migrate->($ha->url('chat', order => [$standby, $primary]));
    is($rc, 0, 'bin/migrate applies everything through a multi-host URL that '
               . 'names the standby first, with target_session_attrs=read-write')
        or diag($out);
    my @files = glob "$Stack::TOP/migrations/[0-9]*.sql";
    is(Stack::psql($ha->url('chat'), 'SELECT count(*) FROM schema_migrations'),
       scalar @files, 'every migration is recorded, on the primary');
}

# --- the stack on both hosts ------------------------------------------------
# The standby first, as an operator who does not know which is which would
# write it: libpq skips it for the one that takes writes.
my $url = $ha->url('chat', order => [reverse $ha->nodes]);
# /history and /search read a standby where there is one.
my $s = Stack->new(db => 'chat', workers => 2, pgbouncer => 0,
                   env => {DATABASE_URL => $url, LISTEN_DATABASE_URL => $url,
                           ARCHIVE_DATABASE_URL => $ha->url('chat', attrs => 'prefer-standby'),
                           PGCHAT_RECV_TIMEOUT => $RECV_TIMEOUT});
my $id = $s->join_nick('sender');
{
    my $archives = sub {
        Stack::psql($ha->admin_url($_[0], 'chat'), q{SELECT count(*) FROM pg_stat_activity
                                                    WHERE application_name = 'pgchat-archive'});
    };
    my $standby;
    Stack::wait_until(90, sub { $standby = $ha->wait_sync(0) });
    my ($st) = $s->get('/history?room=lobby');
    is($st, 200, '/history answers through ARCHIVE_DATABASE_URL (prefer-standby)');
    cmp_ok($archives->($standby), '>=', 1, '... read on the standby');
    is($archives->($ha->primary), 0, '... not on the primary');
}
my $head = Stack::psql($url, q{SELECT last_ts FROM rooms WHERE room = 'lobby'});
my $swarm = Swarm->new($s->port, readers => 4, since => $head);
my $stream = {since => $head, texts => [], ids => [], pings => [], opens => 0};
open_stream($stream);

# The sender, in a process of its own so that nothing here delays it: one
# message every 20 ms, each sent again with its mid until 200 (every 50 ms,
# as fast as the client's first retry). One line per acknowledgement:
# "n timestamp first-attempt-time ack-time attempt-time attempts".
pipe(my $acks_r, my $acks_w) or die "pipe: $!";
my $sender = fork // die "fork: $!";
if ($sender == 0) {
    close $acks_r;
    $acks_w->autoflush(1);
    my ($stop, $parent) = (0, getppid);
    $SIG{TERM} = sub { $stop = 1 };
    my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 1);
    for (my $n = 1; !$stop && getppid == $parent; $n++) {
        my ($first, $tries) = (time, 0);
        while (1) {
            my $t0 = time;
            $tries++;
            my $res = $http->post_form($s->url('/send'),
                {id => $id, text => "m$n", mid => "mid-$n"});
            if ($res->{status} == 200) {
                my $ts = eval { $JSON->decode($res->{content})->{timestamp} } // 0;
                printf $acks_w "%d %s %.4f %.4f %.4f %d\n", $n, $ts, $first, time, $t0, $tries;
                last;
            }
            POSIX::_exit(1) if getppid != $parent;    # the test is gone
            if ($res->{status} >= 400 && $res->{status} < 500 || time - $first > 60) {
                print $acks_w "stuck $n $res->{status} $res->{content}\n";
                POSIX::_exit(1);
            }
            sleep 0.05;
        }
        sleep 0.02;
    }
    POSIX::_exit(0);
}
close $acks_w;
$acks_r->blocking(0);

my (@acked, $acks_buf, @health, @stuck);
my $health_http = HTTP::Tiny->new(timeout => 2);
my $health_at = 0;

# One turn of everything the test watches: the /recv readers, the /events
# reader, the sender's acknowledgements, /healthz (10 times a second).
sub pump {
    $swarm->run_until(sub { 0 }, 0.03);
    read_stream($stream);
    my $n = sysread($acks_r, my $chunk, 65536);
    if ($n) {
        $acks_buf .= $chunk;
        while ($acks_buf =~ s/^(.*)\n//) {
            my $line = $1;
            if ($line =~ /^stuck/) { push @stuck, $line; next }
            my %a;
            @a{qw(n ts first ack attempt tries)} = split ' ', $line;
            push @acked, \%a;
        }
    }
    if (time >= $health_at) {
        my $res = $health_http->get($s->url('/healthz'));
        push @health, [time, $res->{status}];
        $health_at = time + 0.1;
    }
}

# Pumps until $cond is true or $secs pass; returns $cond's last value.
sub wait_for {
    my ($secs, $cond) = @_;
    my $end = time + $secs;
    while (time < $end) {
        my $r = $cond->();
        return $r if $r;
        pump();
    }
    return $cond->();
}

# The /events reader: HTTP/1.0, so that nginx sends the stream unchunked;
# reopened from its cursor (Last-Event-ID) when it breaks, as EventSource
# does.
sub open_stream {
    my ($st) = @_;
    $st->{opens}++;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port,
                                     Timeout => 2);
    unless ($sock) { $st->{retry_at} = time + 0.2; return }
    print $sock "GET /events?since=$st->{since} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    $sock->blocking(0);
    @$st{qw(sock buf head retry_at)} = ($sock, '', 1, undef);
}

sub read_stream {
    my ($st) = @_;
    unless ($st->{sock}) {
        open_stream($st) if time >= ($st->{retry_at} // 0);
        return;
    }
    my $n = sysread($st->{sock}, my $chunk, 65536);
    return if !defined $n && $!{EAGAIN};
    unless ($n) {
        close $st->{sock};
        $st->{sock} = undef;
        $st->{retry_at} = time + 0.2;
        return;
    }
    $st->{buf} .= $chunk;
    if ($st->{head}) {
        return unless $st->{buf} =~ s/\A(.*?)\r\n\r\n//s;
        my $head = $1;
        $st->{head} = 0;
        unless ($head =~ m{^HTTP/\S+ 200}) {
            push @{$st->{errors}}, (split /\r\n/, $head)[0];
            close $st->{sock};
            $st->{sock} = undef;
            $st->{retry_at} = time + 0.2;
            return;
        }
    }
    while ($st->{buf} =~ s/\A(.*?)\n\n//s) {
        my %e;
        for (split /\n/, $1) {
            $e{$1} = $2 if /^(id|data|event): ?(.*)$/;
            push @{$st->{pings}}, time if /^: ?ping/;
        }
        next unless defined $e{data} && !$e{event};
        my $m = eval { $JSON->decode($e{data}) } or next;
        push @{$st->{ids}}, $e{id};
        $st->{since} = $e{id};
        push @{$st->{texts}}, $m->{text} if $m->{type} eq 'msg';
        push @{$st->{seen}}, time if $m->{type} eq 'msg';
    }
}

sub listeners {
    my ($node) = @_;
    return eval { Stack::psql($ha->admin_url($node), q{SELECT count(*) FROM pg_stat_activity
        WHERE application_name = 'pgchat-listen' AND datname = 'chat'}) } // 0;
}

# Everything about one failover or switchover started at $t0 on the old
# primary $old: when a new primary answered /primary; the outage, the
# longest pause between two acknowledgements around it (a switchover's
# starts when the old primary stops, some time after $t0); whether both
# LISTEN connections came back; what /healthz and the event stream said
# meanwhile.
sub recover {
    my ($label, $old, $t0) = @_;
    my $new = wait_for(60, sub {
        for my $n ($ha->others($old)) { return $n if $ha->is($n, 'primary') }
        return undef;
    });
    my $t_promoted = time;
    ok($new, "$label: a new primary ($new) took over") or return;
    # A send that started after the promotion was seen is past the outage.
    ok(wait_for(60, sub { grep { $_->{attempt} >= $t_promoted } @acked }),
       "$label: sends are stored again") or return;
    # Without it nothing wakes a parked reader; the rounds after would
    # only wait out their deadlines.
    ok(wait_for(30, sub { listeners($new) == 2 }),
       "$label: both workers LISTEN again, on the new primary")
        or return diag('pgchat-listen on the new primary: ' . listeners($new));
    my $t_listening = time;
    ok(wait_for(15, sub { $health[-1][1] == 200 }), "$label: /healthz is 200 after");
    my ($from, $to) = ($t0, $t0);
    my @around = grep { $_->{ack} >= $t0 - 5 && $_->{ack} <= $t_listening } @acked;
    for my $i (1 .. $#around) {
        next if $around[$i]{ack} < $t0;
        ($from, $to) = ($around[$i - 1]{ack}, $around[$i]{ack})
            if $around[$i]{ack} - $around[$i - 1]{ack} > $to - $from;
    }
    my %r = (label => $label, promote => $t_promoted - $t0, resume => $to - $t0,
             gap => $to - $from,
             saw_503 => scalar grep({ $_->[0] > $from && $_->[0] < $t_listening
                                      && $_->[1] == 503 } @health),
             pings => scalar grep { $_ > $from && $_ < $to } @{$stream->{pings}});
    note(sprintf '%.0f s: %s: %s -> %s, promoted after %.2f s, first stored send after '
         . '%.2f s, writes paused %.2f s, /healthz 503 seen %d times, stream pings meanwhile %d',
         time - $t_start, $label, $old, $new, @r{qw(promote resume gap saw_503 pings)});
    # Both facts need an outage long enough to be seen: /healthz is asked
    # every 0.1 s, the stream pings every $RECV_TIMEOUT s.
    ok($r{saw_503}, "$label: /healthz answered 503 during the outage")
        if $r{gap} > 1;
    ok($r{pings} > 0, "$label: the stream got its pings during the outage")
        if $r{gap} > 2 * $RECV_TIMEOUT + 0.5;
    return \%r;
}

ok(wait_for(30, sub { @acked >= 20 }), 'the sender stores messages') or diag(@stuck);

my @kills;
for my $k (1 .. $KILLS) {
    ok(wait_for(90, sub { $ha->wait_sync(0) }), "failover $k: a synchronous standby is ready")
        or last;
    my $mark = @acked;
    wait_for(10, sub { @acked >= $mark + 5 });
    my $old = $ha->primary;
    my $t0 = $ha->kill_postmaster($old);
    my $r = recover("failover $k", $old, $t0) or last;
    push @kills, $r;
}

# --- the primary's host is lost: Patroni and PostgreSQL at once -------------
my $lost;
if (@kills == $KILLS && ok(wait_for(90, sub { $ha->wait_sync(0) }), 'node lost: a synchronous standby is ready')) {
    my $mark = @acked;
    wait_for(10, sub { @acked >= $mark + 5 });
    my $old = $ha->primary;
    my $t0 = $ha->kill_node($old);
    $lost = recover('node lost', $old, $t0);
    ok($lost->{promote} <= $HaCluster::DCS{ttl} + 5 * $HaCluster::DCS{loop_wait} + 5,
       'node lost: the standby took over within ttl and a few loops')
        if $lost;
    $ha->revive_node($old);
}

my $switch;
if (@kills == $KILLS && $lost && ok(wait_for(90, sub { $ha->wait_sync(0) }), 'switchover: a synchronous standby is ready')) {
    my $mark = @acked;
    wait_for(10, sub { @acked >= $mark + 5 });
    my $old = $ha->primary;
    my $candidate = $ha->wait_sync(0);
    my $t0 = time;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $ok = eval { $ha->switchover($old, $candidate); 1 };
        print STDERR $@ unless $ok;
        POSIX::_exit($ok ? 0 : 1);
    }
    my $done;
    wait_for(60, sub { $done //= waitpid($pid, WNOHANG) == $pid ? $? : undef; defined $done });
    is($done, 0, 'patronictl switchover succeeds');
    $switch = recover('switchover', $old, $t0);
}

# --- the sender stops; everything acknowledged must be everywhere ------------
kill 'TERM', $sender;
wait_for(60, sub { waitpid($sender, WNOHANG) == $sender });
pump() for 1 .. 3;
is(scalar @stuck, 0, 'no send was refused or stuck') or diag(@stuck);
my @texts = map { "m$_->{n}" } @acked;
is_deeply([map { $_->{n} } @acked], [1 .. @acked], 'every message was acknowledged, in order');
my @rows = map { [split /\|/] } split /\n/, Stack::psql($url, q{SELECT mid, ts FROM messages
    WHERE room = 'lobby' AND type = 'msg' ORDER BY ts});
is(scalar @rows, scalar @acked, 'as many messages are stored as were acknowledged ('
   . scalar(@acked) . ')');
my %count;
$count{$_->[0]}++ for @rows;
is(scalar(grep { $_ > 1 } values %count), 0, 'no message is stored twice');
is_deeply([map { $_->[0] } @rows], [map { "mid-$_->{n}" } @acked],
          'each acknowledged message is stored once, in the order sent');
is_deeply([map { $_->[1] } @rows], [map { $_->{ts} } @acked],
          'with the timestamp its acknowledgement gave');
my $all = wait_for(30, sub {
    $swarm->complete(@texts) == $swarm->readers && @{$stream->{texts}} >= @texts });
is($swarm->complete(@texts), $swarm->readers,
   'every /recv reader saw every message once, in order');
is_deeply($stream->{texts}, \@texts, 'the /events reader saw every message once, in order');
my @ids = @{$stream->{ids}};
is(scalar(grep { $ids[$_] <= $ids[$_ - 1] } 1 .. $#ids), 0, 'its event ids only grow');
# After every failover, /history (on whichever node prefer-standby found)
# catches up with what was acknowledged: a standby lags, it does not lose.
my $newest;
ok(wait_for(30, sub {
    my ($st, $json) = $s->get('/history?room=lobby&limit=200');
    $newest = $st == 200 ? ($json->{messages}[-1]{text} // '') : "status $st";
    $newest eq $texts[-1] }), '/history shows the last acknowledged message')
    or diag("its newest: $newest, the last acknowledged: $texts[-1]");

# --- the numbers ----------------------------------------------------------------
sub pct {
    my ($p, @v) = @_;
    @v = sort { $a <=> $b } @v;
    return @v ? $v[int($p * $#v + 0.5)] : 0;
}
my @tries = map { $_->{tries} } @acked;
my @took = map { $_->{ack} - $_->{attempt} } grep { $_->{tries} == 1 } @acked;
diag(sprintf 'failover: %d kill -9 of the primary\'s postmaster, %d nodes, ttl %d, loop_wait %d, '
     . 'retry_timeout %d, PGCHAT_DB_TIMEOUT 5', scalar @kills, scalar $ha->nodes, @HaCluster::DCS{qw(ttl loop_wait retry_timeout)});
for (['promote', 'kill -> new primary'], ['resume', 'kill -> first stored send'],
     ['gap', 'writes paused']) {
    my ($what, $label) = @$_;
    diag(sprintf '  %-26s p50 %.2f s, max %.2f s (%s)', $label,
         pct(0.5, map { $_->{$what} } @kills), pct(1, map { $_->{$what} } @kills),
         join(' ', map { sprintf '%.2f', $_->{$what} } @kills));
}
diag(sprintf 'node lost: promoted %.2f s, first stored send %.2f s after the kill (writes paused %.2f s)',
     @$lost{qw(promote resume gap)}) if $lost;
diag(sprintf 'switchover: new primary %.2f s after patronictl started, writes paused %.2f s',
     @$switch{qw(promote gap)}) if $switch;
diag(sprintf 'sends: %d acknowledged, %d stored, %d needed a retry (at most %d attempts); '
     . '/recv readers: %d, errors %d; /events reader: %d messages, %d (re)opens',
     scalar @acked, scalar @rows, scalar(grep { $_ > 1 } @tries), pct(1, @tries),
     $swarm->readers, $swarm->errors, scalar @{$stream->{texts}}, $stream->{opens});
diag(sprintf 'a send with no fault (synchronous commit on the standby): p50 %.1f ms, p99 %.1f ms',
     1000 * pct(0.5, @took), 1000 * pct(0.99, @took));
diag(sprintf 'the test took %.0f s', time - $t_start);

$swarm->close_all;
$s->finish;
unless (Test::More->builder->is_passing) {
    my @lines = split /\n/, $s->log('responder');
    diag(join "\n", @lines[($#lines > 80 ? $#lines - 80 : 0) .. $#lines]);
    diag($ha->log($_)) for $ha->nodes;
}
$ha->stop;
done_testing;
