#!/usr/bin/perl
# 86-maintenance.t -- the session sweep and retention run off the event
# loop, one runner at a time across every worker and responder on one
# database; retention keeps the gap rule.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;


# A room with 1500 messages whose oldest 600 are 40 days old: retention of
# 30 days deletes them on its first pass, which every worker tries at start.
my $db = Stack::new_db('maint', 'template_pgchat');
Stack::psql(Stack::db_url($db), q{
    SELECT chat_post('old', array_fill('ann'::text, ARRAY[1500]),
                     array_fill('msg'::text, ARRAY[1500]),
                     ARRAY(SELECT 'm' || i FROM generate_series(1, 1500) i));
    UPDATE messages SET ts = ts - 40 * 86400000::bigint
    WHERE room = 'old' AND seq <= 600;
});

my $s = Stack->new(db => $db, workers => 4, responders => 2,
                   env => {PGCHAT_SWEEP_INTERVAL => 0.2,
                           PGCHAT_SESSION_TIMEOUT => 1,
                           MESSAGE_RETENTION => 30});
for my $i (1 .. 20) { $s->join_nick("idle$i") }

ok(Stack::wait_until(20, sub {
       $s->sql(q{SELECT count(*) FROM messages WHERE room = 'old'}) == 900 }),
   'retention deleted the 600 old messages');
ok(Stack::wait_until(20, sub { $s->sql('SELECT count(*) FROM sessions') == 0 }),
   'the sweep ended the 20 idle sessions');
is($s->sql(q{SELECT count(*) FROM messages WHERE type = 'part'}), 20,
   'each with exactly one part message');
for my $task (qw(sweep expire)) {
    my $runs = $s->sql(qq{SELECT count(*) FROM maintenance_runs WHERE task = '$task'});
    ok($runs >= 1, "$task passes ran ($runs)");
}

# One runner at a time: while the test holds the sweep's lock, no sweep
# runs. (The rows of maintenance_runs cannot show it: a pass records its
# start before it takes the lock and its end before it commits, so two
# passes one after the other may seem to overlap.) The lock is held from
# $from on; a session joined then outlives its timeout twice over, with 8
# workers trying every 0.2 s, and is swept once the lock is let go.
{
    my $held = $s->dir . '/held.out';
    local $ENV{PGAPPNAME} = 'pgchat-test-lock';
    open(my $lock, '|-', 'psql', '-X', '-qtA', '-v', 'ON_ERROR_STOP=1',
         '-d', $s->database_url, '-o', $held) or die "psql: $!";
    $lock->autoflush(1);
    print $lock "BEGIN;\nSELECT pg_advisory_xact_lock(hashtext('pgchat maintenance'), 1);\n";
    Stack::wait_for(10, 'the test to hold the sweep lock', sub {
        $s->sql(q{SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                  WHERE a.application_name = 'pgchat-test-lock' AND l.granted
                    AND l.locktype = 'advisory' AND l.objid = 1}) == 1 });
    my $from = $s->sql('SELECT clock_timestamp()');
    $s->join_nick('held');
    # Not a wait for a fact but the fact itself: a timeout exceeded.
    Stack::wait_for(20, 'the session to be idle for twice its timeout', sub {
        $s->sql(q{SELECT coalesce(extract(epoch FROM clock_timestamp() - max(last_seen)), 0)
                  FROM sessions WHERE nick = 'held'}) > 2 });
    my $to = $s->sql('SELECT clock_timestamp()');
    is($s->sql(q{SELECT count(*) FROM sessions WHERE nick = 'held'}), 1,
       'while the test holds the sweep lock, no sweep ends an idle session');
    is($s->sql(qq{SELECT count(*) FROM maintenance_runs WHERE task = 'sweep'
                  AND started > '$from' AND finished < '$to'}), 0,
       '... and no sweep pass ran');
    print $lock "COMMIT;\n";
    close $lock or die "the lock's transaction failed\n";
    ok(Stack::wait_until(20, sub {
           $s->sql(q{SELECT count(*) FROM sessions WHERE nick = 'held'}) == 0 }),
       'once it lets go, the sweep ends it');
}
my %runner = map { $_ => 1 } split /\n/,
    $s->sql(q{SELECT DISTINCT split_part(runner, ':', 2) FROM maintenance_runs
              WHERE task = 'sweep'});
my @a = grep { $runner{$_} } $s->worker_pids(0);
my @b = grep { $runner{$_} } $s->worker_pids(1);
ok(@a && @b, sprintf('sweeps ran on both responders (%d and %d of 4 workers)',
                     scalar @a, scalar @b));
is($s->sql(q{SELECT count(*) FROM pg_stat_activity
             WHERE application_name = 'pgchat-maint'}), 0,
   'maintenance needs no connection of its own');

# The gap rule after retention: the message 1000 behind the head is gone.
my ($st, $json) = $s->get('/recv?room=old&since=0');
ok($json->{gap}, 'a cursor before what retention deleted is told of the gap');
is($json->{messages}[0]{text}, 'm601', 'and starts after the cut');
my $mid = $s->sql(q{SELECT ts FROM messages WHERE room = 'old' AND seq = 700});
($st, $json) = $s->get("/recv?room=old&since=$mid");
ok(!$json->{gap}, 'a cursor after the cut has no gap');
is($json->{messages}[0]{text}, 'm701', 'and continues where it was');
$s->finish;
done_testing;
