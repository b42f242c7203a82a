#!/usr/bin/perl
# 24-history.t -- scrollback: /history pages back through a room, newest N
# before a cursor, oldest first, "more" until the first message; both sides
# of every limit; one index scan per page at any depth.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;

my $s = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 1});

sub error_is {
    my ($path, $status, $error, $name) = @_;
    my ($got, undef, $raw) = $s->get($path);
    is($got, $status, "$name: status $status");
    is($raw, qq({"error":"$error"}), "$name: error body");
}

# 250 messages in one transaction (consecutive timestamps), then two sends
# by a session, one with a mid.
$s->sql(q{SELECT chat_post('deep', array_fill('filler'::text, ARRAY[250]),
                           array_fill('msg'::text, ARRAY[250]),
                           ARRAY(SELECT 'old ' || i FROM generate_series(1, 250) i))});
my $id = $s->join_nick('carol', 'deep');
$s->post('/send', {id => $id, room => 'deep', text => 'with mid', mid => 'h-1'});
$s->post('/send', {id => $id, room => 'deep', text => 'without'});
my @all = split /\n/, $s->sql(q{SELECT ts FROM messages WHERE room = 'deep' ORDER BY ts});
is(scalar @all, 253, 'the room holds 253 messages');

# --- the newest page ---------------------------------------------------------
my ($st, $json, $raw) = $s->get('/history?room=deep');
is($st, 200, 'history answers 200');
is_deeply([sort keys %$json], [qw(messages more rss)], 'exact keys');
like($raw, qr/"more":true/, 'more is a JSON boolean');
is(scalar @{$json->{messages}}, 50, 'the default page is 50 messages');
is_deeply([map { $_->{timestamp} } @{$json->{messages}}], [@all[-50 .. -1]],
          'without before: the newest 50, oldest first');
is($json->{messages}[-1]{text}, 'without', 'the newest is last');
is($json->{messages}[-2]{mid}, 'h-1', 'a message sent with a mid carries it');
ok(!exists $json->{messages}[-1]{mid}, 'one sent without has none');
is($json->{messages}[-3]{type}, 'join', 'joins are in the history too');
ok(!exists $json->{messages}[-3]{text}, '... without text');

# --- walking back to the first message --------------------------------------
my (@got, $pages);
my $before = $all[-1] + 1;
while (1) {
    ($st, $json) = $s->get("/history?room=deep&before=$before&limit=60");
    last unless $st == 200;
    $pages++;
    unshift @got, map { $_->{timestamp} } @{$json->{messages}};
    last unless $json->{more};
    $before = $json->{messages}[0]{timestamp};
    last if $pages > 10;
}
is($pages, 5, '253 messages are 5 pages of 60');
is_deeply(\@got, \@all, 'walking back with before: every message once, in order');
is(scalar @{$json->{messages}}, 13, 'the last page holds the rest');
ok(!$json->{more}, 'the last page says there is no more');
($st, $json) = $s->get("/history?room=deep&before=$all[0]");
is_deeply($json->{messages}, [], 'before the first message: nothing');
ok(!$json->{more}, '... and no more');
($st, $json) = $s->get("/history?room=deep&before=$all[1]");
is(scalar @{$json->{messages}}, 1, 'before the second: the first alone');
is($json->{messages}[0]{text}, 'old 1', '... which is the first stored');
ok(!$json->{more}, '... and no more');
($st, $json) = $s->get('/history?room=nowhere');
is_deeply([$st, $json->{messages}, $json->{more}], [200, [], JSON::PP::false],
          'a room never written to has no history');
($st, $json) = $s->get('/history');
is($st, 200, 'without a room: the lobby');

# --- limits, both sides ------------------------------------------------------
($st, $json) = $s->get('/history?room=deep&limit=1');
is(scalar @{$json->{messages}}, 1, 'limit 1 is taken');
($st, $json) = $s->get('/history?room=deep&limit=200');
is(scalar @{$json->{messages}}, 200, 'limit 200 is taken');
ok($json->{more}, '... with more behind it');
error_is('/history?room=deep&limit=201', 400, 'Bad limit', 'limit 201');
error_is('/history?room=deep&limit=0', 400, 'Bad limit', 'limit 0');
error_is('/history?room=deep&limit=-5', 400, 'Bad limit', 'a negative limit');
error_is('/history?room=deep&limit=', 400, 'Bad limit', 'an empty limit');
error_is('/history?room=deep&limit=ten', 400, 'Bad limit', 'a limit that is no number');
error_is('/history?room=deep&limit=5.5', 400, 'Bad limit', 'a fractional limit');
error_is('/history?room=deep&before=', 400, 'Bad before', 'an empty before');
error_is('/history?room=deep&before=abc', 400, 'Bad before', 'a before that is no number');
error_is('/history?room=deep&before=-1', 400, 'Bad before', 'a negative before');
error_is('/history?room=deep&before=1.5', 400, 'Bad before', 'a fractional before');
error_is('/history?room=deep&before=' . ('9' x 19), 400, 'Bad before',
         'a before of 19 digits');
($st) = $s->get('/history?room=deep&before=' . ('9' x 18));
is($st, 200, 'a before of 18 digits is taken');
($st) = $s->get('/history?room=deep&before=0');
is($st, 200, 'before 0 is taken');
error_is('/history?room=bad%20room', 400, 'Bad room.', 'a bad room');
($st) = $s->post('/history', {room => 'deep'});
is($st, 405, 'history is GET only');

# --- one index scan per page ------------------------------------------------
my $plan = $s->sql(qq{EXPLAIN SELECT * FROM chat_before('deep', $all[100], 50)});
like($plan, qr/Index Scan Backward using messages_pkey/,
     'a page is a backward scan of the (room, ts) index');
unlike($plan, qr/Sort|Seq Scan/, '... with no sort and no sequential scan');

$s->finish;
done_testing;
