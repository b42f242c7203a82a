#!/usr/bin/perl
# 22-mid.t -- exactly once across retries: a send that repeats a (room,
# nick, mid) of the last 24 hours stores nothing and answers with the
# original's timestamp, also when the repeats race each other on two
# responders of two workers each, and inside one transaction's wait.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use HTTP::Tiny;
use POSIX ();
use Stack qw(wait_until);
use Test::More;
use Time::HiRes qw(time);

my $s = Stack->new(workers => 2, responders => 2,
                   env => {PGCHAT_RECV_TIMEOUT => 1});

sub error_is {
    my ($params, $status, $error, $name) = @_;
    my ($got, undef, $raw) = $s->post('/send', $params);
    is($got, $status, "$name: status $status");
    is($raw, qq({"error":"$error"}), "$name: error body");
}

sub count_rows {
    my ($where) = @_;
    return $s->sql("SELECT count(*) FROM messages WHERE type = 'msg' AND $where");
}

my $alice = $s->join_nick('alice');
my $bob = $s->join_nick('bob');

# --- the mid's rule, both sides of each limit ---------------------------
error_is({id => $alice, text => 'x', mid => ''}, 400, 'Bad mid', 'an empty mid');
error_is({id => $alice, text => 'x', mid => 'm' x 65}, 400, 'Bad mid',
         'a mid of 65 characters');
error_is({id => $alice, text => 'x', mid => 'a.b'}, 400, 'Bad mid', 'a mid with a dot');
error_is({id => $alice, text => 'x', mid => 'a b'}, 400, 'Bad mid', 'a mid with a space');
error_is({id => $alice, text => 'x', mid => "caf\x{e9}"}, 400, 'Bad mid',
         'a mid with a non-ASCII letter');
error_is({id => $alice, text => 'x', mid => '<x>'}, 400, 'Bad mid', 'a mid with <>');
is(count_rows('true'), 0, 'a refused mid stores nothing');
my ($st, $json) = $s->post('/send', {id => $alice, text => 'long', mid => 'm' x 64});
is($st, 200, 'a mid of 64 characters is accepted');
($st, $json) = $s->post('/send', {id => $alice, text => 'one', mid => 'A-z_9'});
is($st, 200, 'a mid of letters, digits, - and _ is accepted');

# --- the reply and the repeat -------------------------------------------
is_deeply([sort keys %$json], [qw(rss timestamp)], 'the reply has rss and timestamp');
my $ts = $json->{timestamp};
like($ts, qr/^\d{13}$/, 'the timestamp is in ms');
is($s->sql("SELECT ts FROM messages WHERE text = 'one'"), $ts,
   "the reply's timestamp is the stored message's");
($st, $json) = $s->post('/send', {id => $alice, text => 'one', mid => 'A-z_9'});
is($st, 200, 'a repeat answers 200');
is($json->{timestamp}, $ts, "a repeat answers with the original's timestamp");
($st, $json) = $s->post('/send', {id => $alice, text => 'changed', mid => 'A-z_9'});
is($json->{timestamp}, $ts, 'a repeat with another text is still the original');
is(count_rows(q{text IN ('one', 'changed')}), 1, 'the repeats stored nothing');
($st, $json) = $s->post('/send', {id => $bob, text => 'bob one', mid => 'A-z_9'});
isnt($json->{timestamp}, $ts, "another nick's same mid is its own message");
my $kitchen = $s->join_nick('alice', 'kitchen');
($st, $json) = $s->post('/send', {id => $kitchen, room => 'kitchen',
                                  text => 'kitchen one', mid => 'A-z_9'});
is(count_rows(q{text = 'kitchen one'}), 1, "another room's same mid is its own message");
($st, $json) = $s->post('/send', {id => $alice, text => 'plain'});
my $plain = $json->{timestamp};
($st, $json) = $s->post('/send', {id => $alice, text => 'plain'});
isnt($json->{timestamp}, $plain, 'sends without a mid are never merged');

# --- /recv carries it -----------------------------------------------------
($st, $json) = $s->get('/recv?since=0');
my %by_text = map { ($_->{text} // '') => $_ } @{$json->{messages}};
is($by_text{one}{mid}, 'A-z_9', 'a message sent with a mid carries it in /recv');
is($by_text{one}{timestamp}, $ts, '... with its timestamp');
ok(!exists $by_text{plain}{mid}, 'a message sent without one has no mid');
ok(!exists $by_text{changed}, 'the repeat never reached a reader');
my ($join) = grep { $_->{type} eq 'join' } @{$json->{messages}};
ok(!exists $join->{mid}, 'a join has no mid');

# --- the 24-hour window ----------------------------------------------------
$s->sql(q{UPDATE message_mids SET sent_at = now() - interval '23 hours 59 minutes'
          WHERE mid = 'A-z_9' AND nick = 'alice' AND room = 'lobby'});
($st, $json) = $s->post('/send', {id => $alice, text => 'one', mid => 'A-z_9'});
is($json->{timestamp}, $ts, 'a repeat within 24 hours is still the original');
$s->sql(q{UPDATE message_mids SET sent_at = now() - interval '24 hours 1 minute'
          WHERE mid = 'A-z_9' AND nick = 'alice' AND room = 'lobby'});
($st, $json) = $s->post('/send', {id => $alice, text => 'one again', mid => 'A-z_9'});
is($st, 200, 'a mid older than 24 hours is taken again');
isnt($json->{timestamp}, $ts, '... as a new message');
is(count_rows(q{text = 'one again'}), 1, '... which is stored');
$s->sql(q{UPDATE message_mids SET sent_at = now() - interval '25 hours'
          WHERE nick = 'bob'});
is(wait_until(15, sub {
       $s->sql(q{SELECT count(*) FROM message_mids WHERE nick = 'bob'}) == 0 }),
   1, 'the sweep forgets mids older than 24 hours');
is($s->sql(q{SELECT count(*) FROM message_mids WHERE nick = 'alice'}), 3,
   '... and keeps the younger ones');

# --- concurrent repeats across workers and responders ----------------------
# 12 rounds; in each, 8 children send the same mid at the same moment.
{
    my $rounds = 12;
    my $copies = 8;
    my @ids = ($alice, $bob);
    my $bad = 0;
    for my $round (1 .. $rounds) {
        # The copies start together when the parent closes $go: all of
        # them have been forked by then.
        pipe(my $wait, my $go) or die;
        my @pending;
        for my $c (1 .. $copies) {
            my $id = $ids[$round % 2];
            pipe(my $r, my $w) or die;
            my $pid = fork // die;
            if ($pid == 0) {
                close $r;
                close $go;
                my $eof = <$wait>;
                my $res = HTTP::Tiny->new(timeout => 30)->get(
                    $s->url("/send?id=$id&text=race$round&mid=race-$round"));
                print $w "$res->{status} $res->{content}";
                close $w;
                POSIX::_exit(0);
            }
            close $w;
            push @pending, [$pid, $r];
        }
        close $wait;
        close $go;
        my %ts;
        for my $p (@pending) {
            my $fh = $p->[1];
            my $out = do { local $/; <$fh> };
            waitpid $p->[0], 0;
            my ($code, $body) = split / /, $out, 2;
            $bad++ unless $code == 200;
            $ts{$1}++ if $body =~ /"timestamp":(\d+)/;
        }
        $bad++ unless keys %ts == 1 && (values %ts)[0] == $copies;
    }
    is($bad, 0, "$rounds rounds of $copies racing repeats all answer 200 "
       . 'with one timestamp each');
    is($s->sql(q{SELECT count(*) FROM messages WHERE text LIKE 'race%'}), $rounds,
       'concurrent repeats of one mid across workers store one row');
    is($s->sql(q{SELECT count(DISTINCT (room, nick, mid)) FROM messages
                 WHERE text LIKE 'race%'}), $rounds, '... one per mid');
}

# Deterministically: a second transaction claiming the same key waits for
# the first and then answers the first's timestamp.
{
    my $url = $s->database_url;
    my $send = sub {
        my ($text) = @_;
        return qq{SELECT ts FROM chat_send(ARRAY['$alice'], ARRAY['lobby'],
                  ARRAY['$text'], ARRAY['held'])};
    };
    my $out = $s->dir . '/held.out';
    # The first: a psql that stores its send in a transaction and commits
    # only when told (a line on its standard input).
    open(my $first_tx, '|-', 'psql', '-X', '-qtA', '-v', 'ON_ERROR_STOP=1',
         '-d', $url, '-o', $out) or die "psql: $!";
    $first_tx->autoflush(1);
    print $first_tx "BEGIN;\n" . $send->('first') . ";\n";
    my $backend = qq{SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()};
    Stack::wait_for(10, 'the first transaction to hold the key', sub {
        $s->sql(qq{$backend AND state = 'idle in transaction'
                   AND query LIKE '%chat_send%'}) == 1 });
    my $second = $s->dir . '/second.out';
    my $pid = fork // die;
    if ($pid == 0) {
        open(STDOUT, '>', $second) or die;
        exec 'psql', '-X', '-qtA', '-d', $url, '-c', $send->('second')
            or POSIX::_exit(127);
    }
    ok(Stack::wait_until(10, sub {
           $s->sql(qq{$backend AND wait_event_type = 'Lock'}) == 1 }),
       'the second, claiming the same key, waits for the first');
    ok(!-s $second, '... and has not answered');
    print $first_tx "COMMIT;\n";
    close $first_tx or die "the first transaction failed\n";
    waitpid $pid, 0;
    my ($first) = Stack::slurp($out) =~ /^(\d+)$/m;
    ok($first, 'the first transaction stored its send');
    is(Stack::slurp($second) =~ s/\s+\z//r, $first,
       "once it commits, the second answers the first's timestamp");
    is(count_rows(q{text IN ('first', 'second')}), 1, '... and stores nothing');
}

$s->finish;
done_testing;
