# History/Nemesis.pm -- faults at random times, one at a time, on the
# History::Http loop the clients run on:
#
#   stop-listen, stop-writer, stop-archive   SIGSTOP of that backend (found
#                                            by application_name), SIGCONT
#                                            0.5-2 x PGCHAT_DB_TIMEOUT later
#   term-listen, term-writer, term-archive   pg_terminate_backend of it
#   pg-fast, pg-immediate                    pg_ctl restart -m fast|immediate
#                                            of the test cluster
#   kill-worker                              SIGKILL of a worker (its parent
#                                            starts another)
#   kill-responder                           SIGKILL of a responder's parent
#                                            (its workers follow), restarted
#   pause-worker                             SIGSTOP of a worker, SIGCONT
#                                            0.5-3 s later
#   pause-responder                          SIGSTOP of a responder's parent
#                                            and all its workers, SIGCONT
#                                            0.5-3 s later
#   reload-nginx                             SIGHUP
#   restart-pgbouncer                        SIGTERM or SIGKILL of the
#                                            stack's PgBouncer, started again
#                                            on its port (only in a stack
#                                            that has one)
#   net-slow                                 the network to the database
#                                            (History::Net) slowed to 8-24
#                                            kbit/s each way, its queue
#                                            holding a packet up to 1.5 s
#                                            (and dropping past that), for
#                                            0.5-2 x PGCHAT_DB_TIMEOUT
#   net-partition                            it drops every packet, as long
#                                            (both only in a stack whose
#                                            responders reach the database
#                                            through a History::Net)
#
# The kinds are dealt from a shuffled deck, reshuffled when it runs out,
# so that a short run sees several kinds and a soak sees them evenly.
# A backend fault that finds no backend makes one first where it can: the
# archive connections open with a /history and close when idle, so a
# stop-archive or term-archive with none asks for a page and waits for it.
#
# Each fault is recorded as {kind, t0, t1, detail}: t0 when it began, t1
# when it was healed (SIGCONT sent, the restart done), for the checker's
# staleness bounds. The kinds and their targets come from a History::Rng
# stream, so a seed replays the same schedule. Whatever happens, nothing
# stays stopped and the cluster is up when the test ends (END below).
package History::Nemesis;

use strict;
use warnings;
use History::Rng;
use POSIX qw(WNOHANG);
use Stack;
use Time::HiRes qw(time);

our @KINDS = qw(stop-listen stop-writer stop-archive term-listen term-writer
                term-archive pg-fast pg-immediate kill-worker kill-responder
                pause-worker pause-responder reload-nginx);

my %APP = (listen => 'pgchat-listen', writer => 'pgchat-writer',
           archive => 'pgchat-archive');

my (%frozen, $restarting);
END {
    kill 'CONT', keys %frozen if %frozen;
    if ($restarting) { waitpid $restarting, 0 }
}

# Options: stack, loop, seed, db_timeout, kinds (default all), gap ([lo,
# hi] seconds between faults), net (the stack's History::Net, if any).
sub new {
    my ($class, %opt) = @_;
    my $self = bless {%opt, faults => [], rng => History::Rng->new($opt{seed}, 'nemesis')},
        $class;
    $self->{kinds} //= [@KINDS, $opt{stack}{pgbouncer} ? ('restart-pgbouncer') : (),
                        $opt{net} ? qw(net-slow net-partition) : ()];
    $self->{deck} = [];
    $self->{gap} //= [0.5, 2.5];
    return $self;
}

sub faults { $_[0]{faults} }

sub start {
    my ($self) = @_;
    $self->{on} = 1;
    $self->schedule;
}

# No new faults; the one under way is healed as planned.
sub stop { $_[0]{on} = 0 }
sub idle { !$_[0]{current} }

sub schedule {
    my ($self) = @_;
    return unless $self->{on};
    $self->{loop}->after($self->{rng}->between(@{$self->{gap}}), sub {
        return unless $self->{on};
        my $kind = $self->deal;
        my $f = {kind => $kind, t0 => time};
        $self->{current} = $f;
        push @{$self->{faults}}, $f;
        my $ok = eval { $self->inflict($f); 1 };
        unless ($ok) {
            $f->{detail} = "not done: $@";
            $f->{detail} =~ s/\s+\z//;
            $self->healed($f);
        }
    });
}

# The next kind from the deck; a new shuffle of every kind when it is empty.
sub deal {
    my ($self) = @_;
    unless (@{$self->{deck}}) {
        my @d = @{$self->{kinds}};
        for (my $i = $#d; $i > 0; $i--) {
            my $j = $self->{rng}->int($i + 1);
            @d[$i, $j] = @d[$j, $i];
        }
        $self->{deck} = \@d;
    }
    return shift @{$self->{deck}};
}

sub healed {
    my ($self, $f) = @_;
    $f->{t1} = time;
    delete $self->{current};
    $self->schedule;
}

sub backends {
    my ($self, $app) = @_;
    return sort { $a <=> $b } split /\n/, $self->{stack}->sql(
        "SELECT pid FROM pg_stat_activity WHERE application_name = '$app'"
        . ' AND datname = current_database()');
}

# Polls $cond on the loop every 0.1 s until it is true or $timeout passes,
# then calls $then.
sub poll_until {
    my ($self, $timeout, $cond, $then) = @_;
    my $end = time + $timeout;
    my $tick;
    $tick = sub {
        return $then->() if $cond->() || time > $end;
        $self->{loop}->after(0.1, $tick);
    };
    $tick->();
}

sub inflict {
    my ($self, $f, $drawn_pick, $drawn_hold) = @_;
    my $rng = $self->{rng};
    my $s = $self->{stack};
    my ($what, $target) = split /-/, $f->{kind}, 2;
    # Drawn whatever the kind, so the stream stays aligned (and only once
    # for a fault that had to make its target first).
    my $pick = $drawn_pick // $rng->rand;
    my $hold = $drawn_hold // $rng->rand;
    if (($what eq 'stop' || $what eq 'term') && $target eq 'archive' && !$f->{made}
        && !(my @open = $self->backends($APP{$target}))) {
        # None open: a page opens one in the worker that serves it.
        $f->{made} = 1;
        $self->{loop}->request('GET', '/history?room=lobby&limit=1', timeout => 10,
                               done => sub {});
        return $self->poll_until(5, sub { my @b = $self->backends($APP{$target}); @b > 0 }, sub {
            $f->{t0} = time;    # the fault begins now, not the page
            my $ok = eval { $self->inflict($f, $pick, $hold); 1 };
            unless ($ok) {
                $f->{detail} = "not done: $@";
                $f->{detail} =~ s/\s+\z//;
                $self->healed($f);
            }
        });
    }
    if ($what eq 'stop' || $what eq 'term') {
        my @pids = $self->backends($APP{$target});
        die "no $APP{$target} backend\n" unless @pids;
        my $pid = $pids[int($pick * @pids)];
        $f->{detail} = "pid $pid of " . scalar(@pids);
        if ($what eq 'term') {
            $s->sql("SELECT pg_terminate_backend($pid)");
            return $self->healed($f);
        }
        kill 'STOP', $pid;
        $frozen{$pid} = 1;
        my $d = (0.5 + 1.5 * $hold) * $self->{db_timeout};
        $f->{detail} .= sprintf ', %.1f s', $d;
        return $self->{loop}->after($d, sub {
            kill 'CONT', $pid;
            delete $frozen{$pid};
            $self->healed($f);
        });
    }
    if ($what eq 'pg') {
        my $pg = Stack::pg_dir();
        chomp(my $bin = `$Stack::TOP/bin/pg-bin`);
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            open(STDOUT, '>', '/dev/null');
            open(STDERR, '>', '/dev/null');
            exec(Stack::as_user("$bin/pg_ctl", '-D', "$pg/data",
                                '-l', "$pg/postgres.log", '-m', $target, '-w', '-t', '60',
                                'restart')) or POSIX::_exit(127);
        }
        $restarting = $pid;
        my $status;
        return $self->poll_until(90, sub {
            my $r = waitpid($pid, WNOHANG);
            $status = $? if $r == $pid;
            return $r != 0;
        }, sub {
            $restarting = undef;
            $f->{detail} = defined $status ? "pg_ctl exit " . ($status >> 8) : 'pg_ctl hung';
            $self->healed($f);
        });
    }
    if ($f->{kind} eq 'restart-pgbouncer') {
        my $old = $s->{pgbouncer} or die "no pgbouncer in this stack\n";
        my $sig = $hold < 0.5 ? 'TERM' : 'KILL';
        kill $sig, $old;
        waitpid $old, 0;
        my $dir = $s->dir;
        $s->{pgbouncer} = Stack::spawn("$dir/pgbouncer.log", {},
                                       Stack::as_user('pgbouncer', "$dir/pgbouncer/pgbouncer.ini"));
        $f->{detail} = "SIG$sig, pid $old, then $s->{pgbouncer}";
        # One more start if the first could not take the port yet.
        my $tries = 0;
        my $then;
        $then = sub {
            return $self->healed($f) if Stack::port_open($s->{pgbouncer_port}) || $tries++ >= 3;
            kill 'KILL', $s->{pgbouncer};
            waitpid $s->{pgbouncer}, 0;
            $s->{pgbouncer} = Stack::spawn("$dir/pgbouncer.log", {},
                                           Stack::as_user('pgbouncer', "$dir/pgbouncer/pgbouncer.ini"));
            $f->{detail} .= ", again $s->{pgbouncer}";
            $self->poll_until(5, sub { Stack::port_open($s->{pgbouncer_port}) }, $then);
        };
        return $self->poll_until(5, sub { Stack::port_open($s->{pgbouncer_port}) }, $then);
    }
    if ($what eq 'kill' || $what eq 'pause') {
        my $which = int($pick * @{$s->{sockets}});
        if ($f->{kind} eq 'pause-responder') {
            my $parent = $s->responder_pid($which) or die "no responder $which\n";
            my @pids = ($parent, $s->worker_pids($which));
            kill 'STOP', @pids;
            $frozen{$_} = 1 for @pids;
            my $d = 0.5 + 2.5 * $hold;
            $f->{detail} = sprintf 'responder %d (%d processes), %.1f s', $which, scalar @pids, $d;
            return $self->{loop}->after($d, sub {
                kill 'CONT', @pids;
                delete @frozen{@pids};
                $self->healed($f);
            });
        }
        if ($target eq 'responder') {
            $f->{detail} = "responder $which";
            $s->stop_responder('KILL', $which);
            $s->start_responder($which);
            return $self->healed($f);
        }
        my @workers = sort { $a <=> $b } $s->worker_pids($which);
        die "no workers in responder $which\n" unless @workers;
        my $pid = $workers[int($hold * @workers)];
        $f->{detail} = "worker $pid of responder $which";
        if ($what eq 'kill') {
            kill 'KILL', $pid;
            return $self->poll_until(10, sub {
                my @now = $s->worker_pids($which);
                @now == @workers && !grep { $_ == $pid } @now;
            }, sub { $self->healed($f) });
        }
        kill 'STOP', $pid;
        $frozen{$pid} = 1;
        my $d = 0.5 + 2.5 * $hold;
        $f->{detail} .= sprintf ', %.1f s', $d;
        return $self->{loop}->after($d, sub {
            kill 'CONT', $pid;
            delete $frozen{$pid};
            $self->healed($f);
        });
    }
    if ($what eq 'net') {
        my $net = $self->{net} or die "no network to the database in this stack\n";
        my $d = (0.5 + 1.5 * $hold) * $self->{db_timeout};
        if ($target eq 'slow') {
            my $kbit = 8 + int(16 * $pick);
            $net->impair('tbf', 'rate', "${kbit}kbit", 'burst', 1600, 'latency', '1500ms');
            $f->{detail} = sprintf '%d kbit/s, %.1f s', $kbit, $d;
        } else {
            $net->impair('pfifo', 'limit', 0);
            $f->{detail} = sprintf 'every packet dropped, %.1f s', $d;
        }
        return $self->{loop}->after($d, sub {
            $net->heal;
            $self->healed($f);
        });
    }
    if ($f->{kind} eq 'reload-nginx') {
        my @old = $s->nginx_workers;
        $s->reload_nginx;
        my %old = map { $_ => 1 } @old;
        return $self->poll_until(10, sub { grep { !$old{$_} } $s->nginx_workers },
                                 sub { $self->healed($f) });
    }
    die "unknown fault $f->{kind}\n";
}

# After the run: the cluster answers again (a restart may have been the
# last fault), or we die saying so.
sub settle {
    my ($self) = @_;
    $self->stop;
    $self->{loop}->run_until(sub { $self->idle }, 120);
    Stack::wait_for(60, 'the test cluster to answer after the faults', sub {
        eval { $self->{stack}->sql('SELECT 1') } // 0;
    });
}

# Faults by kind: {kind => count}.
sub counts {
    my ($self) = @_;
    my %n;
    $n{$_->{kind}}++ for grep { ($_->{detail} // '') !~ /^not done/ } @{$self->{faults}};
    return \%n;
}

1;
