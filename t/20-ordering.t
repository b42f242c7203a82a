#!/usr/bin/perl
# 20-ordering.t -- the cursor: messages in the same millisecond, and
# interleaved senders on two workers, are each read once and in commit order
# by a reader that follows "since".
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;
use Time::HiRes qw(time);

my $s = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 2});

# Reads the room with since until $want msg messages arrived (or 60 s).
sub read_all {
    my ($stack, $room, $want) = @_;
    my ($since, @got) = (0);
    my $deadline = time + 60;
    while (@got < $want && time < $deadline) {
        my ($st, $json) = $stack->get("/recv?since=$since&room=$room");
        die "recv failed: $st" unless $st == 200;
        for my $m (@{$json->{messages}}) {
            push @got, $m if $m->{type} eq 'msg';
            $since = $m->{timestamp};
        }
    }
    return @got;
}

sub db_order {
    my ($room) = @_;
    return split /\n/, $s->sql(qq{SELECT text FROM messages
        WHERE room = '$room' AND type = 'msg' ORDER BY ts});
}

# Two messages committed in the same millisecond: in one batch, and in two
# transactions while the room's head is ahead of the clock (as after a burst
# of sends), where both must take "last + 1".
{
    $s->sql(q{SELECT chat_post('same', ARRAY['x', 'x'], ARRAY['msg', 'msg'],
                               ARRAY['first', 'second'])});
    $s->sql(q{UPDATE rooms SET last_ts = last_ts + 60000 WHERE room = 'same'});
    $s->sql(q{SELECT chat_post('same', ARRAY['x'], ARRAY['msg'], ARRAY['third'])});
    $s->sql(q{SELECT chat_post('same', ARRAY['x'], ARRAY['msg'], ARRAY['fourth'])});
    my @ts = split /\n/, $s->sql(q{SELECT ts FROM messages WHERE room = 'same' ORDER BY seq});
    is($ts[1], $ts[0] + 1, 'two messages of one millisecond get distinct timestamps');
    is($ts[3], $ts[2] + 1, 'so do two transactions while the clock lags the head');
    my ($st, $json) = $s->get('/recv?since=0&room=same');
    is_deeply([map { $_->{text} } @{$json->{messages}}],
              [qw(first second third fourth)], 'all are read, in order');
    ($st, $json) = $s->get("/recv?since=$ts[0]&room=same");
    is_deeply([map { $_->{text} } @{$json->{messages}}], [qw(second third fourth)],
              'a cursor on the first returns only the later ones');
    ($st, $json) = $s->get("/recv?since=$ts[2]&room=same");
    is_deeply([map { $_->{text} } @{$json->{messages}}], ['fourth'],
              'a cursor on the third returns only the fourth');
}

# A reader parked while two senders, on whichever worker, interleave.
{
    my $room = 'race';
    my @ids = map { $s->join_nick("sender$_", $room) } 1 .. 2;
    my $n = 100;
    pipe(my $r, my $w) or die;
    my $reader = fork // die;
    if ($reader == 0) {
        close $r;
        my @got = read_all($s, $room, 2 * $n);
        print $w join("\n", map { $_->{text} } @got), "\n";
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    my @senders;
    for my $k (0, 1) {
        my $pid = fork // die;
        if ($pid == 0) {
            my $ok = 0;
            for my $i (1 .. $n) {
                my ($st) = $s->post('/send', {id => $ids[$k], room => $room,
                                              text => "s$k-$i"});
                $ok++ if $st == 200;
            }
            POSIX::_exit($ok == $n ? 0 : 1);
        }
        push @senders, $pid;
    }
    for (@senders) { waitpid $_, 0; is($?, 0, 'every send was accepted') }
    my @got = do { local $/; split /\n/, <$r> };
    waitpid $reader, 0;
    my @db = db_order($room);
    is(scalar @db, 2 * $n, 'the table holds every message once');
    is(scalar @got, 2 * $n, 'the reader received every message');
    my %seen;
    is(scalar(grep { $seen{$_}++ } @got), 0, 'no message was received twice');
    is_deeply(\@got, \@db, 'the reader\'s order is ORDER BY timestamp');
    for my $k (0, 1) {
        my @mine = grep { /^s$k-/ } @got;
        is_deeply(\@mine, [map { "s$k-$_" } 1 .. $n],
                  "sender ${k}'s messages arrive in the order sent");
    }
    # A second reader, starting late, sees the same history.
    my @late = read_all($s, $room, 2 * $n);
    is_deeply([map { $_->{text} } @late], \@db, 'a late reader sees the same order');
}

$s->finish;
done_testing;
