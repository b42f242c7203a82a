#!/usr/bin/perl
# 26-edges.t -- edges that no other test reached, each one a bug a mutation
# test once planted without the suite noticing:
#   - the 20 s ping is the default: a /recv with nothing to say, on a
#     responder started without PGCHAT_RECV_TIMEOUT, is answered with a
#     ping after 20 s (not 60, not at once);
#   - one transaction that posts to two rooms sends two notifications in
#     one packet: both rooms' parked readers are woken, not only the first;
#   - room names follow the room rule over HTTP, not the nick rule: '^'
#     and '!' are refused, 51 to 64 characters are taken, 65 refused;
#   - text that is not UTF-8 (a lead byte where a continuation belongs, a
#     lone continuation, an overlong form, a surrogate) is refused with
#     400 over HTTP and stores nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;

my $s = Stack->new(workers => 1);
my $id = $s->join_nick('edger', 'one');
$s->join_nick('edger2', 'two');
$s->join_nick('edger3', 'quiet');

sub head_of {
    my ($room) = @_;
    my (undef, $json) = $s->get("/recv?room=$room&since=0");
    return $json->{messages}[-1]{timestamp};
}

# --- the default ping, timed while the rest runs ----------------------------------
my $quiet = $s->get_async('/recv?room=quiet&since=' . head_of('quiet'));
$s->parked(1);

# --- two rooms in one transaction ------------------------------------------------------
{
    my @w = map { $s->get_async("/recv?room=$_&since=" . head_of($_)) } qw(one two);
    $s->parked(3);
    $s->sql(q{BEGIN;
              SELECT chat_post('one', ARRAY['sql'], ARRAY['msg'], ARRAY['to one'], ARRAY[NULL]::text[]);
              SELECT chat_post('two', ARRAY['sql'], ARRAY['msg'], ARRAY['to two'], ARRAY[NULL]::text[]);
              COMMIT;});
    for my $i (0, 1) {
        my ($st, $json, undef, $took) = $w[$i]->wait;
        my $room = (qw(one two))[$i];
        is_deeply([map { $_->{text} } @{$json->{messages} // []}], ["to $room"],
                  sprintf('one commit, two rooms: the reader of %s is woken with its message (%.2f s)',
                          $room, $took));
        cmp_ok($took, '<', 2, '... well before the ping');
    }
}

# --- room names ----------------------------------------------------------------------
for my $room ('a^b', 'a!b', 'r' x 65, 'a b', '') {
    for my $path ("/join?nick=roomy&room=", "/recv?since=0&room=", "/who?room=") {
        my ($st, undef, $raw) = $s->get($path . $s->{http}->www_form_urlencode({r => $room}) =~ s/^r=//r);
        is("$st $raw", '400 {"error":"Bad room."}', "room '"
           . (length $room > 20 ? 'r x ' . length $room : $room) . "' on $path is refused");
    }
}
for my $n (51, 64) {
    my $room = 'r' x $n;
    my ($st) = $s->get("/join?nick=long$n&room=$room");
    is($st, 200, "a room of $n characters is joined");
    ($st) = $s->get("/recv?since=0&room=$room");
    is($st, 200, "and read");
}

# --- text that is not UTF-8 -------------------------------------------------------------
my $before = $s->sql('SELECT count(*) FROM messages');
for my $bad ('%C3%C3', 'a%80b', '%C0%AF', '%ED%A0%80', '%F4%90%80%80', '%E2%82') {
    my ($st, undef, $raw) = $s->post('/send', "id=$id&room=one&text=x$bad");
    is("$st $raw", '400 {"error":"Message is not valid UTF-8"}', "text with $bad is refused");
}
is($s->sql('SELECT count(*) FROM messages'), $before, 'and none of it was stored');

# --- the default ping, answered -------------------------------------------------------
my ($st, $json, undef, $took) = $quiet->wait;
ok($st == 200 && $json->{ping} && !@{$json->{messages}},
   'a /recv with nothing to say is answered with a ping');
cmp_ok(abs($took - 20), '<', 2, sprintf('after the default 20 s (%.1f s)', $took));
$s->finish;
done_testing;
