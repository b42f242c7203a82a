#!/usr/bin/perl
# 89-notify-payload.t -- a room's NOTIFY carries the batch it announces
# (migrations/0009), so a worker whose window ends where the batch began
# appends it without a query; every other case reads the room as before:
#   - followers in two workers get every message once, in order, while the
#     loops' chat_recv queries stay far below one per message
#     (pgchat_room_queries_total against pgchat_notify_appended_total);
#   - a room no reader has asked a worker about gets a window from its
#     batches, and its first readers there need no query;
#   - a batch too big for the 8000-byte payload is announced by its head
#     alone and read by a query;
#   - after the LISTEN connections are killed, the chain of heads is broken
#     and nothing learnt before is used: the next batch is read again, and
#     nothing is lost or repeated;
#   - with the database's pgchat.notify_payload off (a database shared with
#     roles that must not read messages), no notification carries a batch,
#     and followers get everything by queries.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use HTTP::Tiny;
use JSON::PP;
use POSIX ();
use Stack;
use Test::More;

my $s = Stack->new(workers => 2);
my $id = $s->join_nick('payload', 'pay');
my (undef, $first) = $s->post('/send', {id => $id, room => 'pay', text => 'start'});
my $since = $first->{timestamp};

# A reader that follows its cursor until it has $want messages, in a child;
# ->() returns its texts in the order received.
sub follower {
    my ($from, $want) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        my $http = HTTP::Tiny->new(timeout => 60);
        my ($cur, @got) = ($from);
        while (@got < $want) {
            my $res = $http->get($s->url("/recv?room=pay&since=$cur"));
            last unless $res->{success};
            for my $m (@{decode_json($res->{content})->{messages}}) {
                push @got, $m->{text} // "($m->{type})";
                $cur = $m->{timestamp};
            }
        }
        print $w encode_json(\@got);
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    return sub { local $/; my $d = <$r>; waitpid $pid, 0; @{decode_json($d)} };
}

sub send_all {
    my @texts = @_;
    for my $t (@texts) {
        my ($st) = $s->post('/send', {id => $id, room => 'pay', text => $t});
        die "send: $st" unless $st == 200;
    }
}

# --- steady state ---------------------------------------------------------------
my @texts = map { "message $_" } 1 .. 40;
my @readers = map { follower($since, scalar @texts) } 1 .. 6;
$s->parked(6);
my $q0 = $s->metric('pgchat_room_queries_total') // 0;
my $a0 = $s->metric('pgchat_notify_appended_total') // 0;
send_all(@texts);
my @seen = map { [$_->()] } @readers;
is_deeply($_, \@texts, 'a follower got every message once, in order') for @seen;
my $queries = ($s->metric('pgchat_room_queries_total') // 0) - $q0;
my $appended = ($s->metric('pgchat_notify_appended_total') // 0) - $a0;
diag(sprintf '40 messages, 6 followers on 2 workers: %d room queries (%.2f a message), %d batches appended',
             $queries, $queries / 40, $appended);
cmp_ok($appended, '>=', 40, 'each worker appended the batches it was told of');
cmp_ok($queries / 40, '<=', 0.25, 'and the loops read the room for few of them');

# --- a room nobody has asked a worker about --------------------------------------
# A batch is all its room committed after prev, so it starts a window in
# every worker: the first readers of the room there, at any cursor the
# window covers, are answered without a query.
{
    my $a1 = $s->metric('pgchat_notify_appended_total') // 0;
    my $fid = $s->join_nick('fresh', 'fresh');
    my @ts;
    for my $t (qw(one two three)) {
        my ($st, $j) = $s->post('/send', {id => $fid, room => 'fresh', text => $t});
        die "send: $st" unless $st == 200;
        push @ts, $j->{timestamp};
    }
    # The join's batch and the three sends', in both workers.
    Stack::wait_for(10, 'both workers to take the four batches',
                    sub { ($s->metric('pgchat_notify_appended_total') // 0) >= $a1 + 8 });
    my $q1 = $s->metric('pgchat_room_queries_total') // 0;
    my $right = 0;
    for (1 .. 8) {
        my (undef, $j) = $s->get("/recv?room=fresh&since=$ts[0]");
        $right++ if join(',', map { $_->{text} } @{$j->{messages} // []}) eq 'two,three';
    }
    is($right, 8, 'readers of a room never read here get what came after their cursor');
    is(($s->metric('pgchat_room_queries_total') // 0) - $q1, 0, '  without a query, in either worker');
}

# --- a batch that does not fit the payload ------------------------------------------
my (undef, $last) = $s->get('/recv?room=pay&since=0');
$since = $last->{messages}[-1]{timestamp};
my $fat = '"' x 4000;    # JSON doubles it: past the 8000 bytes
@readers = map { follower($since, 2) } 1 .. 2;
$s->parked(2);
$q0 = $s->metric('pgchat_room_queries_total');
send_all($fat, 'thin');
is_deeply([$_->()], [$fat, 'thin'], 'a batch announced by its head alone is read, then the chain goes on')
    for @readers;
cmp_ok($s->metric('pgchat_room_queries_total') - $q0, '>=', 1, '... by a query');

# --- a broken chain ----------------------------------------------------------------
(undef, $last) = $s->get('/recv?room=pay&since=0');
$since = $last->{messages}[-1]{timestamp};
my $r0 = $s->metric('pgchat_db_reconnects_total');
$s->sql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = 'pgchat-listen' AND datname = current_database()});
Stack::wait_for(30, 'the LISTEN connections replaced',
                sub { $s->metric('pgchat_db_reconnects_total') >= $r0 + 2 });
@texts = map { "after $_" } 1 .. 10;
@readers = map { follower($since, scalar @texts) } 1 .. 4;
$s->parked(4);
send_all(@texts);
is_deeply([$_->()], \@texts, 'after the LISTEN connections were replaced: every message once, in order')
    for @readers;
my ($st, $all) = $s->get('/recv?room=pay&since=0');
my @stored = split /\n/, $s->sql(q{SELECT text FROM messages WHERE room = 'pay' AND type = 'msg' ORDER BY ts});
is(scalar @stored, 53, 'the table holds each send once');

# --- the payload turned off ------------------------------------------------------------
my $db = $s->sql('SELECT current_database()');
Stack::psql(Stack::admin_url(), qq{ALTER DATABASE "$db" SET pgchat.notify_payload = off});    # a superuser's setting
$s->restart_responder;    # new connections read the setting
(undef, $last) = $s->get('/recv?room=pay&since=0');
$since = $last->{messages}[-1]{timestamp};
@texts = map { "quiet $_" } 1 .. 10;
@readers = map { follower($since, scalar @texts) } 1 .. 4;
$s->parked(4);
$q0 = $s->metric('pgchat_room_queries_total') // 0;
my $b0 = $s->metric('pgchat_notify_batches_total') // 0;
$a0 = $s->metric('pgchat_notify_appended_total') // 0;
send_all(@texts);
is_deeply([$_->()], \@texts, 'payload off: every message once, in order')
    for @readers;
is(($s->metric('pgchat_notify_batches_total') // 0) - $b0, 0, 'no notification carried a batch');
is(($s->metric('pgchat_notify_appended_total') // 0) - $a0, 0, 'none was appended');
cmp_ok(($s->metric('pgchat_room_queries_total') // 0) - $q0, '>=', 1, 'the loops read the room instead');
$s->finish;
done_testing;
