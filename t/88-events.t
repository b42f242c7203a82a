#!/usr/bin/perl
# 88-events.t -- GET /events: the same cursor as /recv, as a stream of
# Server-Sent Events that stays open; each message one event, a comment line
# as the keep-alive, "event: gap" more than 1000 behind, Last-Event-ID to
# resume, and the session kept alive by its cookie.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Stack;
use Test::More;
use Time::HiRes qw(sleep time);

my $s = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 1,
                                         PGCHAT_SESSION_TIMEOUT => 2,
                                         PGCHAT_SWEEP_INTERVAL => 0.2});

# A stream over HTTP/1.0, so that nginx sends it as it comes, unchunked.
sub open_stream {
    my ($path, @headers) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port)
        or die "connect: $!";
    print $sock join("\r\n", "GET $path HTTP/1.0", 'Host: 127.0.0.1', @headers, '', '');
    return {sock => $sock, buf => ''};
}

# Reads until $want->($buf) is true or $secs pass; returns the buffer.
sub read_until {
    my ($st, $secs, $want) = @_;
    my $sel = IO::Select->new($st->{sock});
    my $end = time + $secs;
    while (!$want->($st->{buf}) && time < $end) {
        next unless $sel->can_read(0.1);
        my $n = sysread($st->{sock}, my $chunk, 65536);
        last unless $n;
        $st->{buf} .= $chunk;
    }
    return $st->{buf};
}

sub events {
    my ($buf) = @_;
    my (undef, $body) = split /\r\n\r\n/, $buf, 2;
    my @ev;
    for my $block (split /\n\n/, $body // '') {
        my %e;
        for (split /\n/, $block) {
            $e{$1} = $2 if /^(id|data|event|retry): ?(.*)$/;
            $e{comment} = 1 if /^:/;
        }
        push @ev, \%e if %e;
    }
    return @ev;
}

sub data_events { grep { exists $_->{data} && !$_->{event} } events($_[0]) }

my ($jst, $jjson, undef, $jres) = $s->post('/join', {nick => 'alice'});
my $id = $jjson->{id};
my $cookie = $jres->{headers}{'set-cookie'} // '';
like($cookie, qr/^pgchat_lobby=\Q$id\E; Path=\/; HttpOnly; SameSite=Strict$/,
     'a join sets the room\'s session cookie, HttpOnly and SameSite=Strict');
my (undef, $head) = $s->get('/recv?since=0');
my $since = $head->{messages}[-1]{timestamp};

# --- messages as events ----------------------------------------------------
my $st = open_stream("/events?since=$since");
my $buf = read_until($st, 5, sub { $_[0] =~ /retry: 1000\n\n/ });
like($buf, qr{^HTTP/1\.\d 200}, 'the stream answers 200');
like($buf, qr{\r\nContent-Type: text/event-stream\r\n}i, 'as text/event-stream');
like($buf, qr/retry: 1000\n\n/, 'and asks to be retried after a second if it breaks');
$s->post('/send', {id => $id, text => "m$_"}) for 1 .. 3;
$buf = read_until($st, 5, sub { data_events($_[0]) >= 4 });
my @ev = data_events($buf);
my @texts = map { JSON::PP->new->utf8->decode($_->{data})->{text} // '' } @ev;
is_deeply([grep { /^m/ } @texts], [qw(m1 m2 m3)], 'each message comes as one event, in order');
my @ids = map { $_->{id} } grep { $_->{data} =~ /"m\d"/ } @ev;
is(scalar(grep { $ids[$_] > $ids[$_ - 1] } 1 .. $#ids), 2, 'their ids grow');
my ($m3) = grep { $_->{data} =~ /"m3"/ } @ev;
is($m3->{id}, JSON::PP->new->utf8->decode($m3->{data})->{timestamp},
   'and are the messages\' timestamps');
$buf = read_until($st, 3, sub { $_[0] =~ /\n: ping\n/ });
like($buf, qr/\n: ping\n\n/, 'a comment line comes as the keep-alive');
my ($sst, $stats) = $s->get('/stats');
close $st->{sock};
ok(Stack::wait_until(5, sub { my (undef, $j) = $s->get('/stats'); !$j->{parked} }),
   'a stream whose client left is dropped');

# --- Last-Event-ID --------------------------------------------------------
$st = open_stream('/events?since=0', "Last-Event-ID: $ids[0]");
$buf = read_until($st, 5, sub { grep { $_->{data} =~ /"m3"/ } data_events($_[0]) });
@texts = map { JSON::PP->new->utf8->decode($_->{data})->{text} // '' } data_events($buf);
is_deeply([grep { /^m/ } @texts], [qw(m2 m3)],
          'Last-Event-ID resumes after that event, over since');
close $st->{sock};

# --- the gap -------------------------------------------------------------
$s->sql(q{SELECT chat_post('big', array_fill('bob'::text, ARRAY[1500]),
                           array_fill('msg'::text, ARRAY[1500]),
                           ARRAY(SELECT 'b' || i FROM generate_series(1, 1500) i))});
$st = open_stream('/events?room=big&since=0');
$buf = read_until($st, 10, sub { data_events($_[0]) >= 1000 });
my @all = events($buf);
my ($first) = grep { exists $_->{data} } @all;
is($first->{event}, 'gap', 'a cursor more than 1000 behind gets "event: gap" first');
@texts = map { JSON::PP->new->utf8->decode($_->{data})->{text} } data_events($buf);
is(scalar @texts, 1000, 'then the newest 1000, page after page');
is($texts[0], 'b501', 'from the first of them');
is($texts[-1], 'b1500', 'to the last');
close $st->{sock};

# --- the session kept alive by its cookie ---------------------------------
# (alice, who had no cookie on her streams, has been swept by now.)
(undef, $jjson, undef, $jres) = $s->post('/join', {nick => 'carol'});
($cookie) = ($jres->{headers}{'set-cookie'} // '') =~ /^([^;]+)/;
$st = open_stream("/events?since=$since", "Cookie: other=1; $cookie");
# dave joins after carol and has no stream: once the sweep has ended him,
# it has seen carol idle for longer still, but for her stream.
$s->join_nick('dave');
ok(Stack::wait_until(20, sub { $s->sql(q{SELECT count(*) FROM sessions WHERE nick = 'dave'}) == 0 }),
   'a session joined after it, without a stream, is swept');
is($s->sql(q{SELECT count(*) FROM sessions WHERE nick = 'carol'}), 1,
   'a session whose only sign of life is its open stream stays');
close $st->{sock};
ok(Stack::wait_until(10, sub { $s->sql(q{SELECT count(*) FROM sessions WHERE nick = 'carol'}) == 0 }),
   'and ends once the stream is closed');

# --- stopping -------------------------------------------------------------
$st = open_stream("/events?since=$since");
read_until($st, 5, sub { $_[0] =~ /retry/ });
my $t0 = time;
$s->stop_responder;
read_until($st, 10, sub { 0 });
ok(time - $t0 < 6, sprintf('a stopping worker ends its streams (%.1f s)', time - $t0));
$s->finish;
done_testing;
