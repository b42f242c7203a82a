#!/usr/bin/perl
# 80-faults.t -- faults while clients wait: lost notifications, PostgreSQL
# restarted, a worker killed, nginx reloaded. Whatever happens, every
# accepted message reaches every reader, once and in order, and the
# responder recovers by itself.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use HTTP::Tiny;
use Stack;
use Swarm;
use Test::More;
use Time::HiRes qw(time);

my $s = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 5});
my $id = $s->join_nick('sender');
my ($st, $json) = $s->get('/recv?since=0');
my $start = $json->{messages}[-1]{timestamp};
my $swarm = Swarm->new($s->port, readers => 100, since => $start);
my @accepted;

sub send_text {
    my ($text) = @_;
    my $t0 = time;
    my ($status, undef, $raw) = $s->post('/send', {id => $id, text => $text});
    push @accepted, $text if $status == 200;
    return ($status, $raw, time - $t0);
}

sub all_received {
    my ($label, $seconds) = @_;
    my $done = $swarm->run_until(sub { $swarm->complete(@accepted) == $swarm->readers },
                                 $seconds // 30);
    ok($done, "$label: all 100 readers hold all " . scalar(@accepted)
              . " accepted messages, once, in order")
        or diag('complete: ' . $swarm->complete(@accepted));
}

$swarm->run_until(sub { $s->metric('pgchat_parked_requests') == 100 }, 30)
    or die "the 100 readers did not park\n";
send_text("before $_") for 1 .. 3;
all_received('to begin with');

# PGCHAT_SOAK_SCALE (make soak) repeats the whole round of faults.
for my $round (1 .. ($ENV{PGCHAT_SOAK_SCALE} // 1)) {
note("round $round");

# --- notifications lost: the LISTEN connections are killed ----------------
{
    my $killed = $s->sql(q{SELECT count(pg_terminate_backend(pid))
        FROM pg_stat_activity WHERE application_name = 'pgchat-listen'});
    is($killed, 2, 'both workers\' LISTEN connections are terminated');
    send_text("unnotified $_") for 1 .. 3;
    all_received('after losing LISTEN', 15);
    my $back = $s->sql(q{SELECT count(*) FROM pg_stat_activity
        WHERE application_name = 'pgchat-listen'});
    is($back, 2, 'the workers listen again');
}

# --- PostgreSQL restarted while 100 readers wait and a sender sends --------
{
    my @workers = sort $s->worker_pids;
    my $pg = Stack::pg_dir();
    my $as = $> == 0 ? 'runuser -u ' . Stack::run_user() . ' -- ' : '';
    chomp(my $bin = `$Stack::TOP/bin/pg-bin`);
    my $restart = fork // die;
    if ($restart == 0) {
        exec("$as$bin/pg_ctl -D $pg/data -m fast -w restart "
             . ">/dev/null 2>&1");
    }
    my ($ok, $refused, $other, $slowest, $bad_body) = (0, 0, 0, 0, 0);
    my $t0 = time;
    while (time - $t0 < 8) {
        my ($status, $raw, $took) = send_text('during ' . int((time - $t0) * 1000));
        $slowest = $took if $took > $slowest;
        if ($status == 200) { $ok++ }
        elsif ($status == 503) { $refused++; $bad_body++ unless $raw =~ /^\{"error":"[^"]+"\}$/ }
        else { $other++; diag("unexpected $status: $raw") }
        $swarm->run_until(sub { 0 }, 0.05);
    }
    waitpid $restart, 0;
    is($?, 0, 'PostgreSQL restarted');
    ok($refused > 0, "sends during the outage were refused ($refused), others accepted ($ok)");
    is($bad_body, 0, 'each refusal is a 503 with a JSON error');
    is($other, 0, 'no other status');
    ok($slowest < 5, sprintf('no send hung (slowest %.2f s)', $slowest));
    # The writer may still be in its back-off: a refused send is retried,
    # as a client does, until one is stored.
    my $status;
    $swarm->run_until(sub { ($status) = send_text('after the restart'); $status == 200 }, 30);
    is($status, 200, 'sends work again after the restart');
    all_received('after the restart', 30);
    is_deeply([sort $s->worker_pids], \@workers,
              'the workers recovered without being restarted');
}

# --- a worker killed with SIGKILL while requests are parked ----------------
{
    my @workers = $s->worker_pids;
    kill 'KILL', $workers[0];
    my @now;
    Stack::wait_until(20, sub {
        @now = $s->worker_pids;
        @now == 2 && !grep { $_ == $workers[0] } @now;
    });
    is(scalar @now, 2, 'the parent replaces a killed worker');
    send_text("after the kill $_") for 1 .. 3;
    all_received('after a worker was killed');
}

# --- nginx reloaded while clients wait ------------------------------------
{
    my @old = $s->nginx_workers;
    $s->reload_nginx;
    send_text("during the reload $_") for 1 .. 3;
    my %old = map { $_ => 1 } @old;
    $swarm->run_until(sub { grep { !$old{$_} } $s->nginx_workers }, 30)
        or die "nginx started no new worker after the reload\n";
    send_text("after the reload $_") for 1 .. 3;
    all_received('across an nginx reload');
}
}

my $stored = $s->sql(q{SELECT count(*) FROM messages WHERE type = 'msg'});
ok($stored >= @accepted, "every accepted message is stored ($stored >= " . scalar(@accepted) . ')');
diag('reader errors seen and retried: ' . $swarm->errors);
$swarm->close_all;
$s->finish;
done_testing;
