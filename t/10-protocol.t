#!/usr/bin/perl
# 10-protocol.t -- every row of the protocol table, success and each error,
# through nginx to the responder and PostgreSQL.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;

my $s = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 1});

sub error_is {
    my ($method, $path, $params, $status, $error, $name) = @_;
    my ($got, undef, $raw, $res) = $method eq 'GET'
        ? $s->get($path) : $s->post($path, $params);
    is($got, $status, "$name: status $status");
    is($raw, qq({"error":"$error"}), "$name: error body");
    like($res->{headers}{'content-type'} // '', qr{^application/json},
         "$name: JSON content type");
}

sub keys_are {
    my ($json, $keys, $name) = @_;
    is_deeply([sort keys %{$json // {}}], [sort @$keys], "$name: exact keys");
}

# --- /who -------------------------------------------------------------
{
    my ($st, $json, $raw, $res) = $s->get('/who');
    is($st, 200, 'who answers 200');
    like($raw, qr/^\{"nicks":\[\],"rss":\d+\}$/, 'who on an empty room: no nicks');
    like($res->{headers}{'content-type'}, qr{^application/json}, 'who is JSON');
    ok($json->{rss} > 1_000_000, 'rss is the worker\'s memory in bytes');
}

# --- /join --------------------------------------------------------------
my $t0 = time * 1000;
my ($st, $json, $raw) = $s->get('/join?nick=alice');
is($st, 200, 'join answers 200');
keys_are($json, [qw(id nick rss starttime)], 'join');
like($json->{id}, qr/^[0-9a-f]{32}$/, 'the session id is 128 bits of hex');
is($json->{nick}, 'alice', 'join echoes the nick');
ok($json->{starttime} <= $t0 + 1000 && $json->{starttime} > $t0 - 600_000,
   'starttime is the server start in ms');
my $alice = $json->{id};

($st, $json) = $s->post('/join', {nick => 'bob'});
is($st, 200, 'join by POST form');
my $bob = $json->{id};
isnt($bob, $alice, 'every session gets its own id');

error_is('GET', '/join?nick=alice', undef, 400, 'Nick in use', 'a taken nick');
error_is('GET', '/join', undef, 400, 'Bad nick.', 'a missing nick');
error_is('GET', '/join?nick=', undef, 400, 'Bad nick.', 'an empty nick');
error_is('GET', '/join?nick=' . ('n' x 51), undef, 400, 'Bad nick.',
         'a nick of 51 characters');
error_is('GET', '/join?nick=a%20b', undef, 400, 'Bad nick.', 'a nick with a space');
error_is('GET', '/join?nick=%3Cimg%3E', undef, 400, 'Bad nick.', 'a nick with <>');
error_is('POST', '/join', {nick => "caf\x{e9}"}, 400, 'Bad nick.',
         'a nick with a non-ASCII letter');
($st) = $s->get('/join?nick=' . ('n' x 50));
is($st, 200, 'a nick of 50 characters is accepted');
($st) = $s->get('/join?nick=A-b_c%5Ed!9');
is($st, 200, 'a nick with every allowed punctuation is accepted');

# --- rooms --------------------------------------------------------------
($st, $json) = $s->get('/join?nick=alice&room=kitchen');
is($st, 200, 'nicks are unique per room: alice may join another room');
my $alice_kitchen = $json->{id};
error_is('GET', '/join?nick=carol&room=bad%20room', undef, 400, 'Bad room.',
         'a room with a space');
error_is('GET', '/join?nick=carol&room=', undef, 400, 'Bad room.', 'an empty room');
error_is('GET', '/join?nick=carol&room=' . ('r' x 65), undef, 400, 'Bad room.',
         'a room of 65 characters');
($st, $json) = $s->get('/who?room=kitchen');
is_deeply($json->{nicks}, ['alice'], 'who lists the nicks of one room');
($st, $json) = $s->get('/who');
is_deeply($json->{nicks}, ['A-b_c^d!9', 'alice', 'bob', 'n' x 50],
          'who without a room is the lobby, sorted');

# --- /send --------------------------------------------------------------
($st, $json, $raw) = $s->post('/send', {id => $alice, text => 'hello'});
is($st, 200, 'send answers 200');
like($raw, qr/^\{"rss":\d+,"timestamp":\d{13}\}$/,
     'send answers {"rss":N,"timestamp":T}');
($st) = $s->get("/send?id=$bob&text=hi+by+GET");
is($st, 200, 'send by GET');
error_is('GET', '/send?id=0123&text=x', undef, 400, 'No such session id',
         'send with an unknown id');
error_is('GET', '/send?text=x', undef, 400, 'No such session id',
         'send without an id');
error_is('GET', "/send?id=$alice_kitchen&text=x", undef, 400,
         'No such session id', 'a session cannot send into another room');
error_is('GET', "/send?id=$alice", undef, 400, 'Empty message', 'send without text');
error_is('GET', "/send?id=$alice&text=x&mid=a.b", undef, 400, 'Bad mid',
         'a send with a bad mid (t/22-mid.t has the rest)');
error_is('GET', "/send?id=$alice&text=", undef, 400, 'Empty message', 'an empty text');
error_is('POST', '/send', {id => $alice, text => " \n\t "}, 400,
         'Empty message', 'a blank text');
error_is('POST', '/send', {id => $alice, text => 'x' x 4097}, 400,
         'Message too long', 'a text of 4097 bytes');
error_is('POST', '/send', {id => $alice, text => ("\x{e9}" x 2049)}, 400,
         'Message too long', '2049 two-byte characters are 4098 bytes');
error_is('GET', "/send?id=$alice&text=%FF", undef, 400,
         'Message is not valid UTF-8', 'invalid UTF-8');
($st) = $s->post('/send', {id => $alice, text => 'y' x 4096});
is($st, 200, 'a text of exactly 4096 bytes is accepted');
($st) = $s->post('/send', {id => $alice_kitchen, room => 'kitchen',
                           text => 'in the kitchen'});
is($st, 200, 'a session sends in its own room');

# --- /recv --------------------------------------------------------------
($st, $json, $raw) = $s->get('/recv?since=0');
is($st, 200, 'recv answers 200');
keys_are($json, [qw(messages rss)], 'recv');
my @m = @{$json->{messages}};
is_deeply([map { "$_->{type}:$_->{nick}" } @m],
          ['join:alice', 'join:bob', 'join:' . ('n' x 50), 'join:A-b_c^d!9',
           'msg:alice', 'msg:bob', 'msg:alice'],
          'recv returns the lobby\'s messages, oldest first');
keys_are($m[0], [qw(nick type timestamp)], 'a join message');
keys_are($m[4], [qw(nick type text timestamp)], 'a msg message');
is($m[4]{text}, 'hello', 'the text is stored verbatim');
is($m[5]{text}, 'hi by GET', '+ in a GET decodes to a space');
is(length $m[6]{text}, 4096, 'the 4096-byte text arrived whole');
ok((grep { $m[$_]{timestamp} <= $m[$_ - 1]{timestamp} } 1 .. $#m) == 0,
   'timestamps strictly increase');
ok(abs($m[0]{timestamp} - $t0) < 60_000, 'timestamps are ms since the epoch');

($st, $json) = $s->get("/recv?since=$m[4]{timestamp}");
is(scalar @{$json->{messages}}, 2, 'since returns only the later messages');
($st, $json) = $s->get("/recv?since=$m[4]{timestamp}&id=null");
is($st, 200, 'recv with id=null (the original client before joining) works');
($st, $json) = $s->get("/recv?since=$m[4]{timestamp}&id=$alice");
is(scalar @{$json->{messages}}, 2, 'recv with a session id works the same');
($st, $json) = $s->get('/recv?since=0&room=kitchen');
is_deeply([map { $_->{text} // $_->{type} } @{$json->{messages}}],
          ['join', 'in the kitchen'], 'recv reads one room');

error_is('GET', '/recv', undef, 400, 'Must supply since parameter', 'recv without since');
error_is('GET', '/recv?since=abc', undef, 400, 'Must supply since parameter',
         'recv with a word as since');
error_is('GET', '/recv?since=', undef, 400, 'Must supply since parameter',
         'recv with an empty since');
error_is('GET', '/recv?since=0&room=a%20b', undef, 400, 'Bad room.',
         'recv in a bad room');

# --- /part --------------------------------------------------------------
($st, undef, $raw) = $s->get("/part?id=$bob");
is($st, 200, 'part answers 200');
like($raw, qr/^\{"rss":\d+\}$/, 'part answers {"rss":N}');
($st, undef, $raw) = $s->get("/part?id=$bob");
is($st, 200, 'part with an id that is gone answers 200 as well');
($st) = $s->post('/part', {id => 'nonsense'});
is($st, 200, 'part with an unknown id answers 200');
error_is('GET', "/send?id=$bob&text=x", undef, 400, 'No such session id',
         'a parted session cannot send');
($st, $json) = $s->get('/who');
ok(!grep({ $_ eq 'bob' } @{$json->{nicks}}), 'a parted nick leaves the who list');
($st, $json) = $s->get("/recv?since=$m[-1]{timestamp}");
is_deeply([map { "$_->{type}:$_->{nick}" } @{$json->{messages}}], ['part:bob'],
          'part stores one part message');
($st) = $s->get('/join?nick=bob');
is($st, 200, 'a parted nick is free again');

# --- a page of 200, and the gap ------------------------------------------
my $room = 'busy';
my $busy = $s->join_nick('talker', $room);
$s->sql(q{SELECT chat_post('busy', array_fill('talker'::text, ARRAY[1200]),
          array_fill('msg'::text, ARRAY[1200]),
          ARRAY(SELECT 'm' || g FROM generate_series(1, 1200) g))});
($st, $json) = $s->get("/recv?since=0&room=$room");
is(scalar @{$json->{messages}}, 200, 'a reply holds at most 200 messages');
ok($json->{gap}, 'a cursor more than 1000 messages behind gets gap:true');
is($json->{messages}[0]{text}, 'm201',
   'after a gap, reading starts at the newest 1000');
my $last = $json->{messages}[-1]{timestamp};
($st, $json, $raw) = $s->get("/recv?since=$last&room=$room");
is(scalar @{$json->{messages}}, 200, 'the next page follows');
ok(!exists $json->{gap}, 'a cursor within the newest 1000 has no gap');
is($json->{messages}[0]{text}, 'm401', 'pages continue without a hole');

# --- the ping -------------------------------------------------------------
($st, $json) = $s->get('/recv?since=0&room=kitchen');
my $head = $json->{messages}[-1]{timestamp};
($st, $json, $raw) = $s->get("/recv?since=$head&room=kitchen");
is($st, 200, 'a recv with nothing new answers 200 in the end');
like($raw, qr/^\{"messages":\[\],"rss":\d+,"ping":true\}$/,
     'and that answer is a ping');

# --- everything else --------------------------------------------------------
error_is('GET', '/nonsense', undef, 404, 'Not found', 'an unknown path');
error_is('GET', '/join/extra', undef, 404, 'Not found', 'an unknown sub-path');
($st, $json, $raw) = $s->request('DELETE', '/who');
is($st, 405, 'DELETE /who is refused');
is($raw, '{"error":"Method not allowed"}', 'with a JSON error');
($st, $json, $raw) = $s->request('POST', '/recv?since=0');
is($st, 405, 'POST /recv is refused with 405');
($st, undef, $raw) = $s->post('/send', "id=$alice&text=x",
                              {'Content-Type' => 'text/plain'});
is($st, 415, 'a POST body that is not a form is refused');
like($raw, qr/^\{"error":/, 'with a JSON error');
($st, undef, $raw) = $s->get('/index.html');
is($st, 200, 'nginx serves the client');

# --- a page of the largest messages ------------------------------------------
# About 830 KB of JSON in one reply: many FastCGI records, whole and in order.
{
    my (undef, $j) = $s->get('/join?nick=big&room=big');
    my $big = $j->{id};
    my @sent = map { sprintf('%04d', $_) . ('z' x 4092) } 1 .. 200;
    my $accepted = grep { ($s->post('/send', {id => $big, room => 'big', text => $_}))[0] == 200 } @sent;
    is($accepted, 200, '200 messages of 4096 bytes are accepted');
    my ($st1, $page1, $raw1) = $s->get('/recv?since=0&room=big');
    is($st1, 200, 'a page of them is answered');
    ok(length($raw1) > 800_000, 'in one reply of ' . length($raw1) . ' bytes');
    my @got = map { $_->{text} } grep { $_->{type} eq 'msg' } @{$page1->{messages}};
    is(scalar @{$page1->{messages}}, 200, 'a page holds 200 messages (the join and 199)');
    my (undef, $page2) = $s->get("/recv?since=$page1->{messages}[-1]{timestamp}&room=big");
    push @got, map { $_->{text} } @{$page2->{messages}};
    is_deeply(\@got, \@sent, 'the next page has the last one: all 200, whole and in order');
}

my $count = $s->sql(q{SELECT count(*) FROM messages WHERE room = 'lobby'});
is($count, 9, 'the lobby holds exactly what was accepted');

$s->finish;
done_testing;
