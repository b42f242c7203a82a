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
use Time::HiRes qw(sleep time);

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
sleep 3; # more passes, all 8 workers trying every 0.2 s

for my $task (qw(sweep expire)) {
    my $runs = $s->sql(qq{SELECT count(*) FROM maintenance_runs WHERE task = '$task'});
    my $overlaps = $s->sql(qq{SELECT count(*) FROM maintenance_runs a
        JOIN maintenance_runs b ON a.task = b.task AND a.ctid <> b.ctid
            AND a.started < b.finished AND b.started < a.finished
        WHERE a.task = '$task'});
    ok($runs >= 1, "$task passes ran ($runs)");
    is($overlaps, 0, "no two $task passes overlapped");
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
