# History/Net.pm -- a network between the responders and the database
# that the nemesis can slow down and cut: the net-slow and net-partition
# faults. The test cluster listens on no port (bin/pg), so the test makes
# one:
#
#   responder, PgBouncer --TCP--> veth pgh<pid>a  (root namespace, 198.18.x.1)
#                                   | a tc qdisc on both ends
#                                 veth pgh<pid>b  (namespace pgchat-h<pid>,
#                                   |              198.18.x.2)
#                                 t/lib/pg-relay :5432 --> the cluster's socket
#
# The faults are qdiscs on both ends of the pair, so both directions: a
# slow link is tbf at a few kbit/s, whose queue holds a packet for up to
# its latency and drops what would wait longer; a partition is a pfifo
# with room for no packet, so every packet is dropped in silence, as a
# cut cable or a firewall would. (Not netem: kernels without sch_netem,
# as this project's CI runs on, have both of these.)
#
# Only the connections of a stack given this route cross the pair; the
# test's own SQL (the nemesis, the table read at the end) keeps the unix
# socket. Everything is the test's own: the namespace and the pair, named
# after the process, go away with it (END, and INT, TERM and HUP exit so
# that END runs); a new run first removes what a killed one left.
#
#   my ($net, $why) = History::Net->make;   # undef and why where it cannot
#   $net->host, $net->port                  # where the database is reached
#   $net->impair(qw(tbf rate 16kbit burst 1600 latency 1500ms))  # slow
#   $net->impair(qw(pfifo limit 0))         # a partition
#   $net->heal
#
# It needs root, ip(8) and tc(8) (Debian's iproute2) and the kernel's tbf
# and pfifo; without them make() says why, and the kinds are left out.
package History::Net;

use strict;
use warnings;
use Stack;

our $NS_PREFIX = 'pgchat-h';
my $made;    # this process's network, removed at exit

END {
    my $status = $?;
    $made->remove if $made;
    $? = $status;
}

sub tool {
    my ($name) = @_;
    for my $dir (split(/:/, $ENV{PATH} // ''), '/usr/sbin', '/sbin') {
        return "$dir/$name" if -x "$dir/$name";
    }
    return;
}

# Runs ip(8) or tc(8); dies with its output when it fails.
sub cmd {
    my (@cmd) = @_;
    my $out = `@cmd 2>&1`;
    die "@cmd: $out" if $?;
    return $out;
}

# Namespaces, veth pairs and relays that a process no longer running left
# behind (killed with SIGKILL, say).
sub remove_leftovers {
    my ($ip) = @_;
    for my $line (split /\n/, `$ip netns list 2>/dev/null`) {
        my ($name, $pid) = $line =~ /^(\Q$NS_PREFIX\E(\d+))\b/ or next;
        next if $pid == $$ || kill(0, $pid);
        kill 'KILL', split ' ', `$ip netns pids $name 2>/dev/null`;
        system("$ip netns delete $name 2>/dev/null");
        system("$ip link delete pgh${pid}a 2>/dev/null");
    }
}

# Makes this process's network (once; later calls return the same one).
# Returns ($net) or (undef, why not).
sub make {
    my ($class) = @_;
    return $made if $made;
    return (undef, 'not root') if $> != 0;
    my ($ip, $tc) = (tool('ip'), tool('tc'));
    return (undef, 'no ip(8) or tc(8) (iproute2)') unless $ip && $tc;
    remove_leftovers($ip);
    my $n = $$ % 16384;
    my $base = sprintf '198.18.%d.%d', 4 * $n >> 8, 4 * $n & 255;    # a /30 of 198.18.0.0/15 per pid
    (my $net = $base) =~ s/\.(\d+)\z/'.' . ($1 + 1)/e;
    (my $far = $base) =~ s/\.(\d+)\z/'.' . ($1 + 2)/e;
    my $self = bless {ip => $ip, tc => $tc, ns => "$NS_PREFIX$$", near_dev => "pgh$$" . 'a',
                      far_dev => "pgh$$" . 'b', near => $net, far => $far, port => 5432}, $class;
    my $ok = eval {
        cmd($ip, 'netns', 'add', $self->{ns});
        $made = $self;
        cmd($ip, 'link', 'add', $self->{near_dev}, 'type', 'veth', 'peer', 'name', $self->{far_dev},
            'netns', $self->{ns});
        cmd($ip, 'addr', 'add', "$net/30", 'dev', $self->{near_dev});
        cmd($ip, 'link', 'set', $self->{near_dev}, 'up');
        cmd($ip, '-n', $self->{ns}, 'addr', 'add', "$far/30", 'dev', $self->{far_dev});
        cmd($ip, '-n', $self->{ns}, 'link', 'set', $self->{far_dev}, 'up');
        cmd($ip, '-n', $self->{ns}, 'link', 'set', 'lo', 'up');
        # Each qdisc may be a module of its own: one made and removed at
        # once says whether the kernel has it.
        for my $q (['tbf', qw(rate 16kbit burst 1600 latency 1500ms)], ['pfifo', qw(limit 0)]) {
            cmd($tc, 'qdisc', 'add', 'dev', $self->{near_dev}, 'root', @$q);
            cmd($tc, 'qdisc', 'del', 'dev', $self->{near_dev}, 'root');
        }
        my $socket = Stack::pg_dir() . '/run/.s.PGSQL.5432';
        my $log = Stack::pg_dir() . "/pg-relay-$$.log";
        $self->{relay} = Stack::spawn($log, {}, $ip, 'netns', 'exec', $self->{ns},
                                      Stack::as_user($^X, "$Stack::TOP/t/lib/pg-relay",
                                                     $far, $self->{port}, $socket));
        Stack::wait_for(10, "pg-relay on $far:$self->{port}", sub {
            (Stack::slurp($log) // '') =~ /listening/ or !kill(0, $self->{relay})
        });
        die "pg-relay did not start: " . (Stack::slurp($log) // '') . "\n"
            unless kill(0, $self->{relay}) && Stack::slurp($log) =~ /listening/;
        1;
    };
    unless ($ok) {
        my $why = $@;
        $why =~ s/\s+\z//;
        $self->remove;
        return (undef, $why);
    }
    for my $sig (qw(INT TERM HUP)) {
        next if ref $SIG{$sig} || ($SIG{$sig} // 'DEFAULT') ne 'DEFAULT';
        $SIG{$sig} = sub { warn "History::Net: SIG$sig, removing $self->{ns}\n"; exit 1 };
    }
    return $self;
}

sub host { $_[0]{far} }
sub port { $_[0]{port} }

# This qdisc on both ends of the pair (both directions).
sub impair {
    my ($self, @qdisc) = @_;
    cmd($self->{tc}, 'qdisc', 'replace', 'dev', $self->{near_dev}, 'root', @qdisc);
    cmd($self->{ip}, 'netns', 'exec', $self->{ns},
        $self->{tc}, 'qdisc', 'replace', 'dev', $self->{far_dev}, 'root', @qdisc);
    $self->{impaired} = 1;
}

sub heal {
    my ($self) = @_;
    system("$self->{tc} qdisc del dev $self->{near_dev} root 2>/dev/null");
    system("$self->{ip} netns exec $self->{ns} $self->{tc} qdisc del dev $self->{far_dev} root 2>/dev/null");
    $self->{impaired} = 0;
}

# The relay and its connections, the pair and the namespace.
sub remove {
    my ($self) = @_;
    return unless $self->{ns};
    if (my $pids = `$self->{ip} netns pids $self->{ns} 2>/dev/null`) {
        kill 'KILL', split ' ', $pids;
    }
    if ($self->{relay}) {
        kill 'KILL', $self->{relay};
        waitpid $self->{relay}, 0;
    }
    system("$self->{ip} link delete $self->{near_dev} 2>/dev/null");
    system("$self->{ip} netns delete $self->{ns} 2>/dev/null");
    $made = undef if $made && $made == $self;
    delete $self->{ns};
}

1;
