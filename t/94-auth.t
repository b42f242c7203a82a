#!/usr/bin/perl
# 94-auth.t -- the chat behind a site's login (PGCHAT_AUTH=request), through
# real nginx and the responder, with contrib/pgchat-auth-example as the
# site:
#
# - without the site's cookie (or with one it does not know) every chat
#   endpoint answers 401 JSON, whatever X-Pgchat-User the client sends; a
#   request that reaches the responder without nginx's answer is 401 too;
# - the nick is the site's user: a join asking for another nick, or
#   sending X-Pgchat-User, gets the user's; two users with two sessions
#   each are two people in /who, with one join message each, and a part
#   of one of two sessions stores no part; a session id used by another
#   user (to send or part) is 403 JSON;
# - a room outside the user's X-Pgchat-Rooms is 403 JSON on every
#   endpoint that names a room (/events, /history and /search too); a
#   user without a list may use any room;
# - a user name, a room list or a role the site gets wrong is a 502 JSON
#   that names the header;
# - a moderator (X-Pgchat-Role: moderator) deletes a message: it becomes a
#   tombstone (type "deleted", no text) in /recv, whether answered from a
#   worker's window or the database, in /history, and /search finds it no
#   more; a 'delete' notice goes to the room; anyone else is 403;
#   the author may delete her own message for PGCHAT_DELETE_WINDOW, and a
#   login in the moderators table is a moderator as the site's role is;
#   /delete and 401 have their own lines in pgchat_requests_total; the
#   join reply says "moderator" and "delete_window";
# - a moderator bans a user from a room, until lifted or for some minutes:
#   the user's sessions there end, a send is 403 JSON "Banned from this
#   room", a join is 403 until the ban is lifted or ends; other rooms stay
#   open to them;
# - the answer is cached per cookie: 100 polls cost the site at most a
#   few requests (counted by the example), against one each without the
#   cache; a site that does not answer is 500 JSON.
# Without PGCHAT_AUTH the rest of the suite is the test that nothing
# changed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(spew start_group stop_group wait_for port_open fcgi_get);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use Test::More;

my $TOP = $Stack::TOP;
my $dir = tempdir('auth-XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp', CLEANUP => 1);
chmod 0755, $dir;
Stack::give_dir($dir);

# The site: its sessions (cookie value, user, rooms) in a file.
spew("$dir/users", <<'USERS');
# cookie      user        rooms
tok-alice     alice       lobby,alpha
tok-bob       bob
tok-bad       not/a/nick
tok-rooms     carol       lobby,bad;room
tok-dave      dave
tok-olga      olga
tok-mod       mona        role=moderator
tok-badrole   rita        role=admin
USERS
my $app_port = Stack::free_port();
my $app = start_group("$dir/app.log", "$dir/app.log", {},
                      Stack::as_user("$TOP/contrib/pgchat-auth-example", $app_port,
                                     "$dir/users", 'appsession'));
wait_for(10, 'the login service to listen', sub { port_open($app_port) });
my $probe = HTTP::Tiny->new(timeout => 5);
sub asked { $probe->get("http://127.0.0.1:$app_port/requests")->{headers}{'x-requests'} }

my %auth = (PGCHAT_AUTH => 'request',
            PGCHAT_AUTH_URL => "http://127.0.0.1:$app_port/auth",
            PGCHAT_AUTH_COOKIE => 'appsession');
my $s = Stack->new(env => {%auth, PGCHAT_AUTH_CACHE => 10}, up => '/healthz');

# A GET as the holder of cookie $tok (none: undef), with more headers.
sub ask {
    my ($stack, $path, $tok, %h) = @_;
    $h{Cookie} = "appsession=$tok" if defined $tok;
    return $stack->request('GET', $path, {headers => \%h});
}

my @chat = ('/who', '/join?nick=eve', '/part?id=' . ('a' x 32),
            '/send?id=' . ('a' x 32) . '&text=hi', '/recv?since=0',
            '/events?since=0', '/history', '/search?q=hi', '/limits');

# --- no login -----------------------------------------------------------
for my $path (@chat) {
    for my $case (['no cookie', undef], ['a cookie the site does not know', 'tok-nobody'],
                  ['only X-Pgchat-User: alice', undef, 'X-Pgchat-User' => 'alice'],
                  ['an unknown cookie and X-Pgchat-User', 'tok-nobody',
                   'X-Pgchat-User' => 'alice', 'X-Pgchat-Rooms' => 'lobby']) {
        my ($what, $tok, %h) = @$case;
        my ($st, $json, $raw, $res) = ask($s, $path, $tok, %h);
        is($st, 401, "$path with $what: 401");
        is($json && $json->{error}, 'Login required', '  JSON saying so')
            or diag($raw);
        like($res->{headers}{'content-type'} // '', qr{^application/json}, '  as JSON');
    }
}
{
    my ($st, $body) = fcgi_get($s->{sockets}[0], '/who', '');
    is($st, 401, 'a request that reaches the responder without a user is 401 there too');
    like($body, qr/Login required/, '  with its JSON');
    ($st) = ask($s, '/healthz');
    is($st, 200, '/healthz needs no login');
}

# --- the user is the nick -------------------------------------------------
my %id;
for my $who (['alice', 1, 'tok-alice'], ['alice', 2, 'tok-alice'],
             ['bob', 1, 'tok-bob'], ['bob', 2, 'tok-bob']) {
    my ($user, $n, $tok) = @$who;
    my ($st, $json, $raw) = ask($s, '/join?nick=mallory', $tok, 'X-Pgchat-User' => 'mallory');
    is($st, 200, "$user joins (session $n), asking for the nick mallory") or diag($raw);
    is($json->{nick}, $user, "  and is $user");
    $id{"$user$n"} = $json->{id};
}
isnt($id{alice1}, $id{alice2}, 'alice has two sessions');
{
    my ($st, $json) = ask($s, '/who', 'tok-alice');
    is_deeply($json->{nicks}, ['alice', 'bob'], 'two users with two sessions each are two people in /who');
    is($s->sql(q{SELECT string_agg(nick || ':' || type, ' ' ORDER BY ts) FROM messages WHERE room = 'lobby'}),
       'alice:join bob:join', 'one join message each');
    ($st, $json) = ask($s, "/send?id=$id{alice2}&text=hello", 'tok-alice', 'X-Pgchat-User' => 'bob');
    is($st, 200, 'alice sends with X-Pgchat-User: bob');
    is($s->sql(q{SELECT nick FROM messages WHERE type = 'msg'}), 'alice', '  and the message is hers');
    # A session id is good only in its own login's hands: bob holding
    # alice's id can neither speak as her nor end her session.
    ($st, $json) = ask($s, "/send?id=$id{alice2}&text=as+alice", 'tok-bob');
    is($st, 403, "bob sends with alice's session id: 403");
    is($json && $json->{error}, 'Not your session', '  JSON saying so');
    ($st, $json) = ask($s, "/part?id=$id{alice2}", 'tok-bob');
    is($st, 403, "bob parts alice's session: 403");
    is($s->sql(qq{SELECT count(*) FROM sessions WHERE login = 'alice'}), 2, '  and both of hers are left');
    ($st, $json) = ask($s, "/send?id=$id{bob1}&text=as+bob", 'tok-bob');
    is($st, 200, '  his own id still sends');
    is($s->sql(q{SELECT string_agg(nick || ':' || text, ' ' ORDER BY ts) FROM messages WHERE type = 'msg'}),
       'alice:hello bob:as bob', '  and nothing was stored as alice');
    ($st) = ask($s, "/part?id=$id{alice1}", 'tok-alice');
    is($st, 200, 'alice parts one session');
    ($st, $json) = ask($s, '/who', 'tok-bob');
    is_deeply($json->{nicks}, ['alice', 'bob'], '  and is still in /who');
    is($s->sql(q{SELECT count(*) FROM messages WHERE type = 'part'}), 0, '  with no part message');
}

# --- rooms ------------------------------------------------------------------
for my $path (@chat) {
    next if $path eq '/limits';    # names no room
    my $p = $path . ($path =~ /\?/ ? '&' : '?') . 'room=secret';
    my ($st, $json, $raw) = ask($s, $p, 'tok-alice');
    is($st, 403, "$path in a room outside alice's list: 403");
    is($json && $json->{error}, 'Not one of your rooms', '  JSON saying so') or diag($raw);
}
{
    my ($st, $json) = ask($s, '/who?room=alpha', 'tok-alice');
    is($st, 200, 'a room in her list is hers');
    ($st) = ask($s, '/history?room=secret', 'tok-bob');
    is($st, 200, 'a user without a list may use any room');
}

# --- what the site gets wrong ---------------------------------------------
{
    my ($st, $json, $raw) = ask($s, '/who', 'tok-bad');
    is($st, 502, 'a user name that is no nick: 502');
    like($json && $json->{error}, qr/Bad X-Pgchat-User from the login service/, '  naming the header')
        or diag($raw);
    ($st, $json, $raw) = ask($s, '/who', 'tok-rooms');
    is($st, 502, 'a room list with a bad name in it: 502');
    like($json && $json->{error}, qr/Bad X-Pgchat-Rooms from the login service/, '  naming the header')
        or diag($raw);
}

# --- moderation -------------------------------------------------------------
sub post_as {
    my ($stack, $path, $tok, $form) = @_;
    return $stack->request('POST', $path, {
        headers => {Cookie => "appsession=$tok",
                    'Content-Type' => 'application/x-www-form-urlencoded'},
        content => $form});
}
{
    my ($st, $json) = ask($s, "/send?id=$id{alice2}&text=secret+plan", 'tok-alice');
    is($st, 200, 'alice says something to delete');
    my $ts = $json->{timestamp};
    # Every worker's window holds it: read it from each (round robin is
    # not promised, so ask until both have answered, bounded).
    my %seen;
    for (1 .. 40) {
        my ($rst, $rjson) = ask($s, '/recv?since=0', 'tok-mod');
        $seen{$rjson->{messages}[-1]{text} // ''}++ if $rst == 200;
    }
    ok($seen{'secret plan'}, 'readers have read it');

    ($st, $json) = post_as($s, '/delete', 'tok-bob', "ts=$ts");
    is($st, 403, 'a user who is neither a moderator nor the author cannot delete');
    is($json && $json->{error}, 'Moderators only, or the author for a while', '  JSON saying so');
    ($st, $json) = post_as($s, '/delete', 'tok-badrole', "ts=$ts");
    is($st, 502, 'a role that is neither moderator nor user: 502');
    like($json && $json->{error}, qr/Bad X-Pgchat-Role from the login service/, '  naming the header');
    ($st, $json) = post_as($s, '/delete', 'tok-mod', "ts=x$ts");
    is($st, 400, 'a ts that is no number: 400');

    ($st, $json) = post_as($s, '/delete', 'tok-mod', "ts=$ts");
    is($st, 200, 'the moderator deletes it');
    my $notice = $json->{timestamp};
    ok($notice > $ts, '  and the notice comes after it');
    ($st, $json) = ask($s, "/recv?since=$ts", 'tok-bob');
    is_deeply([map { [$_->{nick}, $_->{type}, $_->{text}] } @{$json->{messages}}],
              [['mona', 'delete', "$ts"]], 'a reader past it gets the notice naming it');
    my $leak = 0;
    my $tomb = 0;
    for (1 .. 40) {
        my ($rst, $rjson, $raw) = ask($s, '/recv?since=0', 'tok-bob');
        $leak++ if $raw =~ /secret plan/;
        $tomb++ if grep { $_->{timestamp} == $ts && $_->{type} eq 'deleted'
                          && !exists $_->{text} } @{$rjson->{messages} // []};
    }
    is($leak, 0, 'no reader from before it is given its text again');
    is($tomb, 40, '  each is given the tombstone');
    ($st, $json) = ask($s, "/history", 'tok-bob');
    my ($h) = grep { $_->{timestamp} == $ts } @{$json->{messages}};
    is($h && $h->{type}, 'deleted', '/history shows the tombstone');
    ok($h && !exists $h->{text}, '  without its text');
    ($st, $json) = ask($s, "/search?q=secret", 'tok-bob');
    is_deeply($json->{messages}, [], '/search finds it no more');
    ($st, $json) = post_as($s, '/delete', 'tok-mod', "ts=$ts");
    is($st, 404, 'a second delete: 404');
    is($json && $json->{error}, 'No such message', '  JSON saying so');

    # The author, within PGCHAT_DELETE_WINDOW (300 s); the database's
    # moderators.
    ($st, $json) = ask($s, "/send?id=$id{alice2}&text=oops", 'tok-alice');
    my $oops = $json->{timestamp};
    ($st, $json) = ask($s, "/send?id=$id{bob1}&text=rude+words", 'tok-bob');
    my $rude = $json->{timestamp};
    ($st) = post_as($s, '/delete', 'tok-alice', "ts=$rude");
    is($st, 403, "alice cannot delete bob's message");
    ($st) = post_as($s, '/delete', 'tok-alice', "ts=$oops");
    is($st, 200, 'alice deletes her own, just sent');
    ($st) = post_as($s, '/delete', 'tok-olga', "ts=$rude");
    is($st, 403, 'olga, no moderator yet, cannot delete it');
    $s->sql(q{INSERT INTO moderators (login, room) VALUES ('olga', 'lobby')});
    ($st) = post_as($s, '/delete', 'tok-olga', "ts=$rude");
    is($st, 200, 'named a moderator of the lobby in the database, she can');
    # The join reply says what the client may offer to delete.
    my %joined = map { my (undef, $j) = ask($s, '/join', $_); ($_ => $j) } qw(tok-mod tok-olga tok-bob);
    ask($s, "/part?id=$joined{$_}{id}", $_) for keys %joined;
    is_deeply([map { [$joined{$_}{moderator}, $joined{$_}{delete_window}] } qw(tok-mod tok-olga tok-bob)],
              [[JSON::PP::true, 300], [JSON::PP::true, 300], [undef, 300]],
              'the join reply: moderator for mona (the site) and olga (the database), not bob; delete_window 300 for all');
    is($s->sql(q{SELECT string_agg(type, ' ' ORDER BY ts) FROM messages WHERE ts IN (} . "$oops, $rude)"),
       'deleted deleted', '  both are tombstones');
    my $m = $s->metrics;
    cmp_ok($m->{'pgchat_requests_total{endpoint="delete",code="403"}'} // 0, '>=', 3,
           'the metric counts /delete by its name');
    cmp_ok($m->{'pgchat_requests_total{endpoint="who",code="401"}'} // 0, '>=', 1, '  and 401 by its code');
}
{
    my ($st, $json) = post_as($s, '/ban', 'tok-alice', 'user=bob');
    is($st, 403, 'a user who is no moderator cannot ban');
    ($st, $json) = post_as($s, '/ban', 'tok-mod', 'user=not/a/nick');
    is($st, 400, 'a ban of a name that is no user: 400');
    is($json && $json->{error}, 'Bad user', '  JSON saying so');
    ($st, $json) = post_as($s, '/ban', 'tok-mod', 'user=bob&minutes=0');
    is($st, 400, 'a ban for 0 minutes: 400');
    is($json && $json->{error}, 'Bad minutes', '  JSON saying so');
    ($st, $json) = post_as($s, '/ban', 'tok-mod', 'user=bob');
    is($st, 200, 'the moderator bans bob from the lobby');
    ($st, $json) = ask($s, "/send?id=$id{bob2}&text=still+here", 'tok-bob');
    is($st, 403, '  his send is refused: 403');
    is($json && $json->{error}, 'Banned from this room', '  JSON saying so');
    ($st, $json) = ask($s, '/who', 'tok-alice');
    is_deeply($json->{nicks}, ['alice'], '  and he is not in /who');
    is($s->sql(q{SELECT count(*) FROM messages WHERE room = 'lobby' AND nick = 'bob' AND type = 'part'}), 1,
       '  one part message for his two sessions');
    ($st, $json) = ask($s, '/join', 'tok-bob');
    is($st, 403, 'his join is refused');
    is($json && $json->{error}, 'Banned from this room', '  JSON saying so');
    ($st) = ask($s, '/join?room=alpha', 'tok-bob');
    is($st, 200, 'another room is still open to him');
    ($st) = post_as($s, '/unban', 'tok-mod', 'user=bob');
    is($st, 200, 'the moderator lifts the ban');
    ($st, $json) = post_as($s, '/unban', 'tok-mod', 'user=bob');
    is($st, 404, 'a second unban: 404');
    ($st, $json) = ask($s, '/join', 'tok-bob');
    is($st, 200, 'bob joins the lobby again');
    my $bob = $json->{id};

    # For a time, by a moderator the database names.
    ($st) = post_as($s, '/ban', 'tok-olga', 'user=bob&minutes=10');
    is($st, 200, 'olga, a moderator in the database, bans bob for 10 minutes');
    is($s->sql(q{SELECT banned_by || ' ' || extract(epoch FROM banned_until - banned_at)::int FROM chat_bans WHERE login = 'bob'}),
       'olga 600', '  chat_bans shows it, ending in 600 s');
    ($st, $json) = ask($s, "/send?id=$bob&text=hi", 'tok-bob');
    is($st, 403, "  bob's send: 403");
    is($json && $json->{error}, 'Banned from this room', '  JSON saying so');
    # Time is what is tested: the ban's end is moved to the past rather
    # than waited for.
    $s->sql(q{UPDATE bans SET banned_until = now() - interval '1 s' WHERE login = 'bob'});
    ($st, $json) = ask($s, '/join', 'tok-bob');
    is($st, 200, 'once it has ended, bob joins again');
    ($st) = ask($s, "/send?id=$json->{id}&text=back", 'tok-bob');
    is($st, 200, '  and sends');
}

# --- the cache ----------------------------------------------------------------
# 100 polls of one reader whose cookie the site has not been asked about
# yet (/recv behind the room's head is answered at once). With the cache
# the site is asked once, or again if the 10 s ran out meanwhile; without
# it, once a poll.
sub polls {
    my ($stack) = @_;
    my $before = asked();
    my $ok = 0;
    for (1 .. 100) {
        my ($st) = ask($stack, '/recv?since=0', 'tok-dave');
        $ok++ if $st == 200;
    }
    return ($ok, asked() - $before);
}
my ($ok, $cost) = polls($s);
is($ok, 100, '100 polls answered');
cmp_ok($cost, '<=', 3, "and they cost the site $cost requests (at most a few)");
diag("auth requests per 100 polls, cached for 10 s: $cost");
$s->finish;

my $nocache = Stack->new(env => {%auth, PGCHAT_AUTH_CACHE => 0}, up => '/healthz');
{
    my ($st, $json) = ask($nocache, '/join?nick=dave', 'tok-dave');
    is($st, 200, 'without the cache dave joins');
}
($ok, $cost) = polls($nocache);
is($ok, 100, 'with PGCHAT_AUTH_CACHE=0, 100 polls answered');
is($cost, 100, "  and each asked the site ($cost requests)");
diag("auth requests per 100 polls, without the cache: $cost");

# A site that does not answer: nginx's auth_request says 500, as JSON.
stop_group($app);
{
    my ($st, $json, $raw) = ask($nocache, '/who', 'tok-dave');
    is($st, 500, 'with the login service down: 500');
    # The error page's text follows the auth request's own status (502).
    is($json && $json->{error}, 'Chat server unavailable, try again', '  as JSON') or diag($raw);
}
$nocache->finish;
done_testing;
