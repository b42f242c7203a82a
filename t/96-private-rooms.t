#!/usr/bin/perl
# 96-private-rooms.t -- rooms an operator marks private (migrations/0016,
# fcgi/private.c), through real nginx and the responder behind a site's
# login (contrib/pgchat-auth-example):
#
# - a private room answers 403 JSON "Not one of your rooms" on every
#   endpoint that names a room to a user whose X-Pgchat-Rooms does not name
#   it: no list, "*", or a list of other rooms; a user whose list names it
#   uses it as any room;
# - marking takes effect in every worker without a restart, whether by
#   chat_room_private() or by an INSERT from psql, and unmarking too;
# - a reader already waiting in a room when it becomes private is not left
#   there: a parked /recv gets 403, an /events stream ends and coming back
#   gets 403; one whose list names the room keeps waiting;
# - a room marked while a worker's LISTEN connection is frozen is private
#   in that worker once the connection is replaced (the set is read again
#   on every new connection, not trusted from before);
# - a NOTIFY any role may send cannot make a room public: the workers
#   believe only the table;
# - without a login (PGCHAT_AUTH off), nobody may use a private room.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(spew start_group wait_for port_open);
use File::Temp qw(tempdir);
use Test::More;

my $TOP = $Stack::TOP;
my $dir = tempdir('private-XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp', CLEANUP => 1);
chmod 0755, $dir;
Stack::give_dir($dir);

spew("$dir/users", <<'USERS');
# cookie      user        rooms
tok-alice     alice       lobby,staff
tok-bob       bob
tok-carol     carol       *
tok-dave      dave        *,staff,ops
tok-erin      erin        lobby
USERS
my $app_port = Stack::free_port();
start_group("$dir/app.log", "$dir/app.log", {},
            Stack::as_user("$TOP/contrib/pgchat-auth-example", $app_port,
                           "$dir/users", 'appsession'));
wait_for(10, 'the login service to listen', sub { port_open($app_port) });

my @frozen;
END { kill 'CONT', @frozen if @frozen }

my $s = Stack->new(workers => 2,
                   env => {PGCHAT_AUTH => 'request',
                           PGCHAT_AUTH_URL => "http://127.0.0.1:$app_port/auth",
                           PGCHAT_AUTH_COOKIE => 'appsession',
                           PGCHAT_AUTH_CACHE => 0,
                           PGCHAT_DB_TIMEOUT => 1,
                           PGCHAT_RECV_TIMEOUT => 20},
                   up => '/healthz');

sub ask {
    my ($stack, $path, $tok) = @_;
    return $stack->request('GET', $path, {headers => {Cookie => "appsession=$tok"}});
}

# Every worker must have heard: nginx spreads requests over them, so the
# answer is asked for until 8 in a row agree (bounded).
sub settled {
    my ($stack, $path, $tok, $want) = @_;
    my $run = 0;
    return wait_for(10, "$path as $tok to answer $want on every worker", sub {
        my ($st) = ask($stack, $path, $tok);
        $run = $st == $want ? $run + 1 : 0;
        return $run >= 8;
    });
}

my @paths = ('/who', '/join?nick=x', '/part?id=' . ('a' x 32),
             '/send?id=' . ('a' x 32) . '&text=hi', '/recv?since=0',
             '/events?since=0', '/history', '/search?q=hi');

is($s->sql(q{SELECT chat_room_private('staff')}), 't', 'staff is marked private');
is($s->sql(q{SELECT chat_room_private('staff')}), 'f', '  and marking it again changes nothing');
settled($s, '/history?room=staff', 'tok-bob', 403);

for my $path (@paths) {
    my $p = $path . ($path =~ /\?/ ? '&' : '?') . 'room=staff';
    for my $who (['bob (no list)', 'tok-bob'], ['carol (*)', 'tok-carol'],
                 ['erin (lobby only)', 'tok-erin']) {
        my ($st, $json, $raw) = ask($s, $p, $who->[1]);
        is($st, 403, "$path in the private room as $who->[0]: 403");
        is($json && $json->{error}, 'Not one of your rooms', '  JSON saying so') or diag($raw);
    }
}
{
    my ($st, $json) = ask($s, '/join?room=staff&nick=x', 'tok-alice');
    is($st, 200, 'alice, whose list names staff, joins it');
    my $alice = $json->{id};
    ($st, $json) = ask($s, "/send?room=staff&id=$alice&text=agenda", 'tok-alice');
    is($st, 200, '  and sends');
    ($st, $json) = ask($s, '/history?room=staff', 'tok-dave');
    is($st, 200, 'dave, whose list is "*,staff", reads its history');
    is($json->{messages}[-1]{text}, 'agenda', '  and sees the message');
    ($st) = ask($s, '/history?room=lobby', 'tok-carol');
    is($st, 200, 'carol ("*") still uses every public room');
    ($st) = ask($s, '/history?room=anything', 'tok-bob');
    is($st, 200, 'bob (no list) too');
}

# --- readers already in a room that becomes private --------------------------
{
    my ($st, $json) = ask($s, '/join?room=ops', 'tok-bob');
    is($st, 200, 'bob joins the public room ops');
    my $bob = $json->{id};
    ($st, $json) = ask($s, '/join?room=ops', 'tok-dave');
    ($st, $json) = ask($s, "/send?room=ops&id=$bob&text=hello", 'tok-bob');
    is($st, 200, '  and sends');
    my $head = $json->{timestamp};
    my $recv = $s->get_async("/recv?room=ops&since=$head", Cookie => 'appsession=tok-bob');
    my $keep = $s->get_async("/recv?room=ops&since=$head", Cookie => 'appsession=tok-dave');
    my $stream = $s->get_async("/events?room=ops&since=$head", Cookie => 'appsession=tok-bob');
    $s->parked(3);
    $s->sql(q{INSERT INTO private_rooms (room) VALUES ('ops')});
    my ($rst, $rjson, $rraw, $took) = $recv->wait;
    is($rst, 403, "bob's parked /recv gets 403 once ops is private (from psql)") or diag($rraw);
    is($rjson && $rjson->{error}, 'Not one of your rooms', '  JSON saying so');
    cmp_ok($took, '<', 10, '  at once, not at its ping (20 s)');
    my ($sst, undef, undef, $stook) = $stream->wait;
    is($sst, 200, "bob's stream ends");
    cmp_ok($stook, '<', 10, '  at once');
    ($st) = ask($s, "/events?room=ops&since=$head", 'tok-bob');
    is($st, 403, '  and coming back is 403');
    is($s->metric('pgchat_parked_requests'), 1, "dave's reader (his list names ops) still waits");
    ($st, $json) = ask($s, "/join?room=ops&nick=x", 'tok-dave');
    ($st) = ask($s, "/send?room=ops&id=$json->{id}&text=still+here", 'tok-dave');
    my ($kst, $kjson) = $keep->wait;
    is($kst, 200, '  and is woken by the next message');
    is($kjson->{messages}[0]{text}, 'still here', '  which it gets');

    is($s->sql(q{SELECT chat_room_private('ops', false)}), 't', 'ops is made public again');
    settled($s, '/history?room=ops', 'tok-bob', 200);
    pass('  and bob may read it again in every worker');
}

# --- a change the workers could not hear ----------------------------------------
{
    # A NOTIFY that says the rooms changed is only a reason to read the
    # table again: it cannot make staff public.
    $s->sql(q{NOTIFY pgchat, '*private'});
    $s->sql(q{SELECT pg_notify('pgchat', '*private staff 0')});
    my ($st) = ask($s, '/history?room=staff', 'tok-bob');
    is($st, 403, "a forged notification changes nothing: staff is still private");

    my @listen = split /\n/, $s->sql(q{SELECT pid FROM pg_stat_activity
        WHERE application_name = 'pgchat-listen' AND datname = current_database()});
    is(scalar @listen, 2, 'both workers LISTEN');
    kill 'STOP', @listen;
    push @frozen, @listen;
    is($s->sql(q{SELECT chat_room_private('board')}), 't',
       'board is marked while every LISTEN backend is frozen');
    settled($s, '/history?room=board', 'tok-bob', 403);
    pass('  and is private in every worker once their connections are replaced');
    kill 'CONT', @listen;
    @frozen = ();
}
$s->finish;

# --- no login at all -------------------------------------------------------
{
    my $plain = Stack->new(workers => 1, env => {PGCHAT_RECV_TIMEOUT => 20});
    $plain->sql(q{SELECT chat_room_private('staff')});
    settled($plain, '/history?room=staff', 'none', 403);
    for my $path (@paths) {
        my $p = $path . ($path =~ /\?/ ? '&' : '?') . 'room=staff';
        my ($st, $json) = $plain->get($p);
        is($st, 403, "without a login, $path in a private room: 403");
    }
    is(($plain->get('/history?room=lobby'))[0], 200, '  and public rooms are open as ever');
    $plain->finish;
}

done_testing;
