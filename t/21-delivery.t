#!/usr/bin/perl
# 21-delivery.t -- exactly once, in order, under concurrency: 8 senders on
# 2 workers send 500 messages each while 5 readers follow the room (two
# parked, two lagging, one that abandons its poll at random moments). Every
# reader must end with every message, once, in ORDER BY timestamp. Then the
# same with two responder instances behind one nginx upstream.
#
# PGCHAT_SOAK_SCALE multiplies the messages (make soak).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use HTTP::Tiny;
use POSIX ();
use Stack;
use Test::More;
use Time::HiRes qw(sleep time);

my $scale = $ENV{PGCHAT_SOAK_SCALE} // 1;
my $senders = 8;
my $per_sender = 500 * $scale;
my $total = $senders * $per_sender;

# Runs in a child: follows the room until $total messages, writes them.
sub reader {
    my ($stack, $room, $style, $file) = @_;
    srand($$);
    my ($since, @got) = (0);
    my $deadline = time + 120 * $scale;
    my $http = HTTP::Tiny->new(timeout => 60, keep_alive => 1);
    while (@got < $total && time < $deadline) {
        my $url = $stack->url("/recv?since=$since&room=$room");
        if ($style eq 'reconnecting') {
            # Gives up on its poll at a random moment, as a flaky network
            # does, and asks again from the same cursor.
            $http = HTTP::Tiny->new(timeout => 0.05 + rand(1.0));
        }
        my $res = $http->get($url);
        next if $res->{status} == 599;
        die "recv: $res->{status} $res->{content}" unless $res->{status} == 200;
        my $json = JSON::PP->new->utf8->decode($res->{content});
        for my $m (@{$json->{messages}}) {
            push @got, $m->{text} if $m->{type} eq 'msg';
            $since = $m->{timestamp};
        }
        # Not a wait: lagging behind the room is what this reader is for.
        sleep(rand(0.3)) if $style eq 'lagging';
    }
    open(my $fh, '>', $file) or die;
    print $fh "$_\n" for @got;
    close $fh;
}

sub run_scenario {
    my ($stack, $label) = @_;
    my $room = 'delivery';
    my @ids = map { $stack->join_nick("s$_", $room) } 1 .. $senders;
    my @styles = qw(parked parked lagging lagging reconnecting);
    my (@readers, @files);
    for my $i (0 .. $#styles) {
        my $file = $stack->dir . "/reader$i";
        push @files, $file;
        my $pid = fork // die;
        if ($pid == 0) {
            reader($stack, $room, $styles[$i], $file);
            POSIX::_exit(0);
        }
        push @readers, $pid;
    }
    # The readers have read the joins and wait for the sends: the two
    # parked ones at least (the others come and go).
    Stack::wait_for(30, 'the parked readers to wait', sub {
        ($stack->metric('pgchat_parked_requests') // 0) >= 2 });
    my $t0 = time;
    my @pids;
    for my $k (0 .. $senders - 1) {
        my $pid = fork // die;
        if ($pid == 0) {
            my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 1);
            my $failed = 0;
            for my $i (1 .. $per_sender) {
                my $res = $http->post_form($stack->url('/send'),
                    {id => $ids[$k], room => $room, text => "$k:$i"});
                $failed++ unless $res->{status} == 200;
            }
            POSIX::_exit($failed ? 1 : 0);
        }
        push @pids, $pid;
    }
    my $send_failures = 0;
    for (@pids) { waitpid $_, 0; $send_failures++ if $? }
    my $send_time = time - $t0;
    is($send_failures, 0, "$label: all $total sends were accepted");
    waitpid $_, 0 for @readers;

    my @db = split /\n/, $stack->sql(qq{SELECT text FROM messages
        WHERE room = '$room' AND type = 'msg' ORDER BY ts});
    is(scalar @db, $total, "$label: the table holds $total messages");
    for my $i (0 .. $#styles) {
        open(my $fh, '<', $files[$i]) or die;
        chomp(my @got = <$fh>);
        my %seen;
        my $dups = grep { $seen{$_}++ } @got;
        my $missing = grep { !$seen{$_} } @db;
        ok(@got == $total && !$dups && !$missing && "@got" eq "@db",
           "$label: $styles[$i] reader $i got all $total, once each, in table order")
            or diag("got " . scalar(@got) . ", duplicates $dups, missing $missing");
    }
    my @per_sender_ok = grep {
        my $k = $_;
        my @mine = grep { /^$k:/ } @db;
        "@mine" eq join(' ', map { "$k:$_" } 1 .. $per_sender);
    } 0 .. $senders - 1;
    is(scalar @per_sender_ok, $senders, "$label: each sender's messages are in the order sent");
    diag(sprintf("%s: %d sends in %.1f s (%.0f/s)", $label, $total, $send_time,
                 $total / $send_time));
}

{
    my $s = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 3});
    run_scenario($s, 'one responder, 2 workers');
    $s->finish;
}
{
    my $s = Stack->new(workers => 1, responders => 2,
                       env => {PGCHAT_RECV_TIMEOUT => 3});
    run_scenario($s, 'two responders behind one upstream');
    $s->finish;
}

done_testing;
