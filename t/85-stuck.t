#!/usr/bin/perl
# 85-stuck.t -- a database that stops answering, and a web server that stops
# reading, never freeze a worker. A backend frozen with SIGSTOP is what a
# network black hole or a hung server looks like to libpq: the worker's
# calls on it must be given up within PGCHAT_DB_TIMEOUT, its connection
# replaced, its readers pinged and served meanwhile.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Stack;
use Test::More;
use Time::HiRes qw(time);

my @frozen;   # backends to wake whatever happens
END { kill 'CONT', @frozen if @frozen }

sub backend {
    my ($s, $app) = @_;
    my @pids = split /\n/, $s->sql(qq{SELECT pid FROM pg_stat_activity
        WHERE application_name = '$app' AND datname = current_database()
        ORDER BY backend_start});
    return @pids;
}

sub freeze { my ($pid) = @_; kill 'STOP', $pid; push @frozen, $pid }

# Bytes sent to backend $pid that it has not read (frozen, it reads none):
# the Recv-Q of its sockets, as ss(8) shows them.
sub unread {
    my ($pid) = @_;
    my $n = 0;
    for (`ss -xpn 2>/dev/null`) {
        my ($q) = /^\S+\s+\S+\s+(\d+)\s.*pid=$pid,/ or next;
        $n += $q;
    }
    return $n;
}
sub thaw { my ($pid) = @_; kill 'CONT', $pid; @frozen = grep { $_ != $pid } @frozen }

sub head_of {
    my ($s) = @_;
    my ($st, $json) = $s->get('/recv?since=0');
    return @{$json->{messages} // []} ? $json->{messages}[-1]{timestamp} : 0;
}

sub texts { map { $_->{text} // () } @{$_[0]{messages} // []} }

# --- the LISTEN backend frozen -------------------------------------------
{
    my $s = Stack->new(workers => 1, env => {PGCHAT_RECV_TIMEOUT => 3,
                                             PGCHAT_DB_TIMEOUT => 1});
    my $id = $s->join_nick('alice');
    my $since = head_of($s);
    ok(Stack::wait_until(10, sub { backend($s, 'pgchat-writer') == 1 }),
       'the writer\'s connection is named pgchat-writer');
    my ($listen) = backend($s, 'pgchat-listen');
    ok($listen, 'the LISTEN connection is named pgchat-listen');

    my $timeouts = $s->metric('pgchat_db_timeouts_total');
    freeze($listen);
    my $waiting = $s->get_async("/recv?since=$since");
    $s->parked(1);
    my $t0 = time;
    my ($st, $json) = $s->get('/healthz');
    ok(time - $t0 < 1, sprintf('/healthz answers at once (%.2f s)', time - $t0));
    # 200 until a call on the frozen connection has waited past the bound,
    # 503 from then until the new LISTEN: either may be the case now.
    ok(($st == 200 && $json->{status} eq 'ok') || ($st == 503 && $json->{error}),
       "... with 200 and its status or 503 and an error ($st)");
    my ($status) = $s->post('/send', {id => $id, text => 'while frozen'});
    is($status, 200, 'a send is stored while the LISTEN backend is frozen');
    my ($pst, $pjson, undef, $took) = $waiting->wait;
    ok($pst == 200 && ($pjson->{ping} || grep { $_ eq 'while frozen' } texts($pjson)),
       sprintf('the parked reader is answered (%.1f s)', $took));
    ok($took < 3 + 2, 'within the ping timeout');

    ok(Stack::wait_until(8, sub { grep { $_ != $listen } backend($s, 'pgchat-listen') }),
       'the stuck LISTEN connection is replaced');
    cmp_ok($s->metric('pgchat_db_timeouts_total'), '>', $timeouts,
           'the call it did not answer is counted in pgchat_db_timeouts_total');
    my ($hst) = $s->get('/healthz');
    is($hst, 200, '/healthz is 200 on the new connection');
    my $r = $s->get_async("/recv?since=$since");
    my ($rst, $rjson) = $r->wait;
    is_deeply([texts($rjson)], ['while frozen'],
              'the message sent meanwhile reaches a reader');

    thaw($listen);
    my ($s2) = $s->post('/send', {id => $id, text => 'after the thaw'});
    is($s2, 200, 'a send after the thaw is stored');
    # Its NOTIFY reaches the worker's window soon after the reply: a fresh
    # reader sees it at the latest on its own query.
    my $ajson;
    Stack::wait_for(5, 'a reader sees the message sent after the thaw', sub {
        (undef, $ajson) = $s->get("/recv?since=$since");
        grep { $_ eq 'after the thaw' } texts($ajson);
    });
    is_deeply([texts($ajson)], ['while frozen', 'after the thaw'],
              'everything is delivered once, in order, after SIGCONT');
    ok(Stack::wait_until(5, sub { backend($s, 'pgchat-listen') == 1 }),
       'the abandoned backend is gone');
    $s->finish;
}

# --- the writer's backend frozen -----------------------------------------
# The sweep runs on the writer's connection too: one that met the frozen
# backend first would be the call that times out, and the send would go on
# the new connection (stored, 200: right, but not what is tested). With an
# hour between sweeps, none comes in the test's few seconds.
{
    my $s = Stack->new(workers => 1, env => {PGCHAT_DB_TIMEOUT => 1,
                                             PGCHAT_SWEEP_INTERVAL => 3600});
    my $id = $s->join_nick('bob');
    my ($writer) = backend($s, 'pgchat-writer');
    ok($writer, 'the writer has its connection');
    freeze($writer);
    my $t0 = time;
    my ($status, $json) = $s->post('/send', {id => $id, text => 'lost to a frozen backend'});
    my $took = time - $t0;
    is($status, 503, 'a send on a frozen backend is refused');
    ok($json && $json->{error}, 'with a JSON error');
    ok($took < 1 + 1, sprintf('within the bound plus a second (%.2f s)', $took));
    my ($again) = $s->post('/send', {id => $id, text => 'on a new connection'});
    is($again, 200, 'the next send is stored, on a new connection');
    thaw($writer);
    # Once its backend has gone, whatever it was sent has run or never will.
    Stack::wait_for(10, "the abandoned writer backend $writer to end",
                    sub { !grep { $_ == $writer } backend($s, 'pgchat-writer') });
    my $rows = $s->sql(q{SELECT string_agg(text, ',' ORDER BY ts) FROM messages
                         WHERE type = 'msg'});
    is($rows, 'on a new connection',
       'the refused send is not stored once its backend wakes (it was ended)');
    $s->finish;
}

# --- the archive's backend frozen ---------------------------------------
# /history and /search have a connection of their own: a read that hangs
# (or a slow search) holds up no send.
{
    my $s = Stack->new(workers => 1, env => {PGCHAT_DB_TIMEOUT => 2});
    my $id = $s->join_nick('dave');
    is(scalar(backend($s, 'pgchat-archive')), 0,
       'no archive connection before the first read');
    my ($hst) = $s->get('/history');
    is($hst, 200, 'a page of history');
    my ($archive) = backend($s, 'pgchat-archive');
    ok($archive, 'read on a connection of its own, named pgchat-archive');
    freeze($archive);
    my $page = $s->get_async('/history');
    my $search = $s->get_async('/search?q=anything');
    Stack::wait_for(10, "a read sent to the frozen archive backend $archive",
                    sub { unread($archive) > 0 });
    my $t0 = time;
    my ($status) = $s->post('/send', {id => $id, text => 'past a stuck read'});
    my $took = time - $t0;
    is($status, 200, 'a send is stored while a read hangs');
    ok($took < 1.5, sprintf('at once (%.2f s), not after the read\'s 2 s bound', $took));
    # Whichever of the two came first hangs and is given up; the other is
    # answered after it, on a new connection.
    my @got = ([$page->wait], [$search->wait]);
    my @refused = grep { $_->[0] == 503 } @got;
    ok(@refused >= 1, 'the hanging read is given up with 503 ('
       . join(' and ', map { $_->[0] } @got) . ')');
    ok(!grep({ !($_->[1] && $_->[1]{error}) } @refused), 'with a JSON error');
    ok(!grep({ $_->[0] != 503 && $_->[0] != 200 } @got), 'the one queued behind it is answered');
    thaw($archive);
    my ($again, $json) = $s->get('/history');
    is($again, 200, 'the next page comes, on a new connection');
    is_deeply([texts($json)], ['past a stuck read'], 'with the message');
    $s->finish;
}

# --- the re-read after a new LISTEN, timed --------------------------------
# With a 20 s ping, only the re-read of every room with parked readers gets
# a message sent while LISTEN was down to them in time.
{
    my $s = Stack->new(workers => 1, env => {PGCHAT_RECV_TIMEOUT => 20,
                                             PGCHAT_DB_TIMEOUT => 1});
    my $id = $s->join_nick('carol');
    my $since = head_of($s);
    my @readers = map { $s->get_async("/recv?since=$since") } 1 .. 3;
    $s->parked(3);
    my ($listen) = backend($s, 'pgchat-listen');
    freeze($listen);
    my ($status) = $s->post('/send', {id => $id, text => 'unheard'});
    is($status, 200, 'a message is sent while LISTEN is stuck');
    my $t0 = time;
    my @got = map { [$_->wait] } @readers;
    my $slowest = 0;
    for (@got) { $slowest = $_->[3] if $_->[3] > $slowest }
    is(scalar(grep { join(',', texts($_->[1])) eq 'unheard' } @got), 3,
       'every parked reader gets it');
    ok(time - $t0 < 2 * 1 + 2,
       sprintf('within 2 s of the new LISTEN (%.1f s after the send)', time - $t0));
    thaw($listen);
    $s->finish;
}

# --- a web server that stops reading stalls only its own connection -------
{
    my $s = Stack->new(workers => 1);
    my $id = $s->join_nick('dave');
    my $big = 'x' x 4000;
    $s->post('/send', {id => $id, text => "$big $_"}) for 1 .. 200;

    # A raw FastCGI client on the responder's socket asks for 800 kB and
    # reads none of it.
    my $raw = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $s->{sockets}[0])
        or die "connect: $!";
    my $rec = sub {
        my ($type, $content) = @_;
        pack('CCnnCC', 1, $type, 1, length $content, 0, 0) . $content;
    };
    my $nv = sub {
        my %p = @_;
        join '', map { pack('CC', length $_, length $p{$_}) . $_ . $p{$_} } sort keys %p;
    };
    print $raw $rec->(1, pack('nCx5', 1, 1))
             . $rec->(4, $nv->(REQUEST_METHOD => 'GET', DOCUMENT_URI => '/recv',
                               QUERY_STRING => 'since=0'))
             . $rec->(4, '') . $rec->(5, '');
    # The answer has begun to come: the rest of it waits in the worker.
    Stack::wait_for(10, 'the first bytes of the answer nobody reads',
                    sub { IO::Select->new($raw)->can_read(0) });

    my $slowest = 0;
    for (1 .. 20) {
        my $t0 = time;
        my ($st) = $s->get('/who');
        my ($st2) = $s->post('/send', {id => $id, text => "meanwhile $_"});
        $slowest = time - $t0 if time - $t0 > $slowest;
        die "status $st $st2" unless $st == 200 && $st2 == 200;
    }
    ok($slowest < 1, sprintf('others are served meanwhile (slowest %.3f s)', $slowest));
    ok(Stack::wait_until(15, sub { $s->log('responder') =~ /dropped a FastCGI connection that read nothing/ }),
       'the connection that reads nothing is dropped after its timeout');
    close $raw;
    $s->finish;
}

done_testing;
