# HaCluster.pm -- a PostgreSQL 15 cluster that fails over by itself, for a
# test: one etcd member and Patroni nodes (two unless told), each with its
# own data directory and ports on 127.0.0.1, synchronous_mode on,
# everything run as Stack::run_user() (PostgreSQL refuses root). Waits on
# facts (etcd's /health, Patroni's /primary, /replica and /sync), never on
# a fixed time, and leaves nothing running when the test exits, however it
# exits (but kill -9: then PostgreSQL stops by itself once run-tests has
# removed its data directory).
# Core Perl modules only.
#
#   my $ha = HaCluster->new;                 # a primary and a sync standby
#   $ha->create_db('chat');                  # owned by the chat's role
#   my $url = $ha->url('chat');              # every host, read-write
#   my $old = $ha->primary;
#   $ha->kill_postmaster($old);              # kill -9
#   my $new = $ha->wait_primary(30, $old);   # the standby took over
#   $ha->wait_sync(60);                      # a sync standby again
#   $ha->kill_node($new);                    # Patroni too: ttl decides
#   $ha->revive_node($new);
#   $ha->switchover($leader, $candidate);    # patronictl
#   $ha->stop;
package HaCluster;

use strict;
use warnings;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Stack qw(wait_until spew slurp as_user run_user);
use Time::HiRes qw(sleep time);

chomp(my $PG_BIN = `$Stack::TOP/bin/pg-bin`);
my @live;    # every cluster not stopped yet, for END

END {
    my $status = $?;
    $_->stop for grep { defined } @live;
    $? = $status;
}

# A test stopped by a signal (prove interrupted, timeout(1), a prove gone
# that leaves its TAP pipe without a reader) would skip END
# and leave Patroni and PostgreSQL running: exit instead, so that it runs.
sub exit_on_signals {
    for my $sig (qw(INT TERM HUP PIPE)) {
        next if ref $SIG{$sig} || ($SIG{$sig} // 'DEFAULT') ne 'DEFAULT';
        $SIG{$sig} = sub {
            warn "HaCluster: SIG$sig, stopping the cluster\n" unless $sig eq 'PIPE';
            exit 1;
        };
    }
}

# Patroni's timings, in seconds. They bound every recovery: a primary that
# is gone with its Patroni is replaced within ttl; a postmaster that dies
# under a live Patroni is failed over within a loop_wait or two
# (primary_start_timeout 0: no restart in place while a sync standby can
# take over).
our %DCS = (ttl => 10, loop_wait => 1, retry_timeout => 3);

sub free_port { Stack::free_port() }

sub secret { join '', map { sprintf '%02x', int rand 256 } 1 .. 16 }

# Options: nodes (default 2), dcs (overrides of %DCS), parameters (more
# postgresql.conf settings for every node).
sub new {
    my ($class, %opt) = @_;
    my $user = run_user();
    my $self = bless {
        dir => tempdir('ha-XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp',
                       CLEANUP => 1),
        user => $user,
        scope => "pgchat-test-$$",
        superuser_pw => secret(),
        replication_pw => secret(),
        role => $user,
        role_pw => secret(),
        etcd_port => free_port(),
        etcd_peer_port => free_port(),
        nodes => {},
        order => [],
        http => HTTP::Tiny->new(timeout => 2),
        owner => $$,    # a forked child must not stop what it did not start
    }, $class;
    exit_on_signals();
    chmod 0755, $self->{dir};
    Stack::give_dir($self->{dir});
    push @live, $self;
    weaken($live[-1]);
    $self->start_etcd;
    for my $i (1 .. ($opt{nodes} // 2)) {
        my $name = "node$i";
        push @{$self->{order}}, $name;
        $self->{nodes}{$name} = {
            name => $name,
            dir => "$self->{dir}/$name",
            pg_port => free_port(),
            api_port => free_port(),
        };
    }
    my %dcs = (%DCS, %{$opt{dcs} // {}});
    # The first node bootstraps alone; the others then copy it.
    my ($first, @rest) = @{$self->{order}};
    $self->start_node($first, \%dcs, $opt{parameters});
    die "no primary came up:\n" . $self->log($first)
        unless wait_until(90, sub { $self->is($first, 'primary') });
    $self->create_chat_role;
    $self->start_node($_, \%dcs, $opt{parameters}) for @rest;
    # Every node streaming, one of them the synchronous standby.
    wait_until(120, sub { $self->wait_sync(0) && !grep { !$self->is($_, 'replica') } @rest })
        or die "the standbys did not come up:\n" . join('', map { $self->log($_) } @rest);
    return $self;
}

sub dir { $_[0]{dir} }
sub nodes { @{$_[0]{order}} }
sub node { $_[0]{nodes}{$_[1]} }

sub start_etcd {
    my ($self) = @_;
    my $dir = "$self->{dir}/etcd";
    mkdir $dir or die "mkdir $dir: $!";
    chmod 0700, $dir;
    Stack::give_dir($dir);
    my $client = "http://127.0.0.1:$self->{etcd_port}";
    my $peer = "http://127.0.0.1:$self->{etcd_peer_port}";
    $self->{etcd} = $self->spawn("$self->{dir}/etcd.log", as_user(
        'etcd', '--name', 'pgchat-test', '--data-dir', "$dir/data",
        '--listen-client-urls', $client, '--advertise-client-urls', $client,
        '--listen-peer-urls', $peer, '--initial-advertise-peer-urls', $peer,
        '--initial-cluster', "pgchat-test=$peer",
        '--initial-cluster-state', 'new', '--log-level', 'warn'));
    die "etcd did not become healthy:\n" . slurp("$self->{dir}/etcd.log")
        unless wait_until(30, sub {
            my $res = $self->{http}->get("$client/health");
            return $res->{status} == 200 && $res->{content} =~ /"health":\s*"true"/;
        });
}

# Starts @cmd (already wrapped in as_user) in a process group of its own,
# output appended to $log; returns its pid.
sub spawn {
    my ($self, $log, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        open(STDIN, '<', '/dev/null') or die;
        open(STDOUT, '>>', $log) or die;
        open(STDERR, '>>', $log) or die;
        chdir $self->{dir} or die;
        exec @cmd or POSIX::_exit(127);
    }
    return $pid;
}

# The node's patroni.yml: a minimal configuration for pgchat (ha/patroni.yml
# is the operators' version of it, with the same choices explained).
sub patroni_yml {
    my ($self, $n, $dcs, $parameters) = @_;
    my $params = join '', map { "        $_: $parameters->{$_}\n" }
        sort keys %{$parameters // {}};
    return <<"YML";
scope: $self->{scope}
namespace: /pgchat-test/
name: $n->{name}
log:
  level: INFO
  format: '%(asctime)s %(levelname)s: %(message)s'
restapi:
  listen: 127.0.0.1:$n->{api_port}
  connect_address: 127.0.0.1:$n->{api_port}
etcd3:
  hosts: 127.0.0.1:$self->{etcd_port}
bootstrap:
  dcs:
    ttl: $dcs->{ttl}
    loop_wait: $dcs->{loop_wait}
    retry_timeout: $dcs->{retry_timeout}
    primary_start_timeout: 0
    synchronous_mode: true
    maximum_lag_on_failover: 16777216
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: 'on'
        max_connections: 100
        max_wal_senders: 5
        max_replication_slots: 5
        wal_keep_size: 128MB
        shared_buffers: 32MB
        synchronous_commit: 'on'
$params  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
postgresql:
  listen: 127.0.0.1:$n->{pg_port}
  connect_address: 127.0.0.1:$n->{pg_port}
  data_dir: $n->{dir}/data
  bin_dir: $PG_BIN
  pgpass: $n->{dir}/pgpass
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  authentication:
    superuser:
      username: postgres
      password: $self->{superuser_pw}
    replication:
      username: replicator
      password: $self->{replication_pw}
  parameters:
    unix_socket_directories: '$n->{dir}/run'
    unix_socket_permissions: '0700'
    logging_collector: 'on'
    log_directory: '$n->{dir}/log'
    log_filename: 'postgresql.log'
    log_line_prefix: '%m [%p] '
    log_min_messages: warning
  pg_hba:
    - local all all scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
YML
}

sub start_node {
    my ($self, $name, $dcs, $parameters) = @_;
    my $n = $self->{nodes}{$name};
    for my $d ($n->{dir}, "$n->{dir}/run", "$n->{dir}/log") {
        mkdir $d or die "mkdir $d: $!";
        chmod 0700, $d;
        Stack::give_dir($d);
    }
    my $yml = "$n->{dir}/patroni.yml";
    spew($yml, $self->patroni_yml($n, $dcs, $parameters));
    chmod 0600, $yml;
    Stack::give_dir($yml);
    $self->start_patroni($name);
}

sub start_patroni {
    my ($self, $name) = @_;
    my $n = $self->{nodes}{$name};
    $n->{patroni} = $self->spawn("$n->{dir}/patroni.log",
                                 as_user('patroni', "$n->{dir}/patroni.yml"));
}

# The whole node $name is lost at once, as when its host dies: kill -9 its
# Patroni, then its postmaster. Its leader key, if it held it, stays in
# etcd until ttl runs out. Returns the time of the kill.
sub kill_node {
    my ($self, $name) = @_;
    my $n = $self->{nodes}{$name};
    my $pm = $self->postmaster_pid($name);
    my $t = time;
    if (my $pid = delete $n->{patroni}) {
        kill 'KILL', -$pid;
        waitpid($pid, 0);
    }
    kill 'KILL', $pm if $pm;
    return $t;
}

# Node $name's host is back: its Patroni starts again, on what its data
# directory holds.
sub revive_node {
    my ($self, $name) = @_;
    die "$name runs" if $self->{nodes}{$name}{patroni};
    $self->start_patroni($name);
}

# The chat's role and database, made on the primary.
sub create_chat_role {
    my ($self) = @_;
    my $admin = $self->admin_url($self->primary // die 'no primary');
    Stack::psql($admin, qq{CREATE ROLE "$self->{role}" LOGIN PASSWORD '$self->{role_pw}'});
}

# A database for the chat, owned by its role.
sub create_db {
    my ($self, $db) = @_;
    Stack::psql($self->admin_url($self->primary // die 'no primary'),
                qq{CREATE DATABASE "$db" OWNER "$self->{role}"});
}

# Patroni's REST API of node $name: whether GET /$what (primary, replica,
# sync, health) answers 200.
sub is {
    my ($self, $name, $what) = @_;
    my $res = $self->{http}->get("http://127.0.0.1:$self->{nodes}{$name}{api_port}/$what");
    return $res->{status} == 200;
}

# The node that answers /primary now, undef when none does.
sub primary {
    my ($self) = @_;
    for my $name ($self->nodes) {
        return $name if $self->is($name, 'primary');
    }
    return undef;
}

# The other nodes than $name.
sub others { my ($self, $name) = @_; grep { $_ ne $name } $self->nodes }

# Waits up to $timeout s for a primary other than $not; returns its name.
sub wait_primary {
    my ($self, $timeout, $not) = @_;
    my $found;
    wait_until($timeout, sub {
        for my $name ($self->nodes) {
            next if defined $not && $name eq $not;
            return $found = $name if $self->is($name, 'primary');
        }
        return 0;
    });
    return $found;
}

# Waits up to $timeout s until there is a primary and a synchronous
# standby streaming from it: a failover could then lose nothing. Returns
# the standby's name.
sub wait_sync {
    my ($self, $timeout) = @_;
    my $found;
    wait_until($timeout, sub {
        my $p = $self->primary // return 0;
        for my $name ($self->others($p)) {
            return $found = $name if $self->is($name, 'sync') && $self->is($name, 'replica');
        }
        return 0;
    });
    return $found;
}

# The postmaster's pid of node $name, from its postmaster.pid.
sub postmaster_pid {
    my ($self, $name) = @_;
    my ($pid) = slurp("$self->{nodes}{$name}{dir}/data/postmaster.pid") =~ /\A(\d+)/;
    return $pid && alive($pid) && slurp("/proc/$pid/cmdline") =~ /postgres/ ? $pid : undef;
}

# Whether process $pid runs (a zombie does not: nobody may reap a
# postmaster that Patroni left to init).
sub alive {
    my ($pid) = @_;
    my ($state) = slurp("/proc/$pid/stat") =~ /^\d+ \(.*\) (\S)/s or return 0;
    return $state ne 'Z';
}

# kill -9 the postmaster of node $name (its backends follow it); returns
# the time of the kill.
sub kill_postmaster {
    my ($self, $name) = @_;
    my $pid = $self->postmaster_pid($name) or die "$name has no postmaster";
    kill 'KILL', $pid or die "cannot kill $pid: $!";
    return time;
}

# A planned switchover to $candidate with patronictl, as an operator would
# run it; returns patronictl's output, dies when it fails.
sub switchover {
    my ($self, $leader, $candidate) = @_;
    my $yml = "$self->{nodes}{$leader}{dir}/patroni.yml";
    my $cmd = join ' ', map { "'$_'" } as_user('patronictl', '-c', $yml,
        'switchover', '--leader', $leader, '--candidate', $candidate, '--force');
    my $out = `$cmd 2>&1`;
    die "patronictl switchover failed:\n$out" if $?;
    return $out;
}

# The chat role's URL for $db over every node, as pgchat is meant to be
# given it: libpq tries the hosts in order and keeps the one that takes
# writes. %opt: attrs (target_session_attrs, default read-write; '' for
# none), order (node names, default all in order).
sub url {
    my ($self, $db, %opt) = @_;
    my @names = @{$opt{order} // $self->{order}};
    my $attrs = $opt{attrs} // 'read-write';
    return "postgresql://$self->{role}:$self->{role_pw}\@/$db?host="
        . join(',', map { '127.0.0.1' } @names) . '&port='
        . join(',', map { $self->{nodes}{$_}{pg_port} } @names)
        . '&connect_timeout=2'
        . ($attrs ne '' ? "&target_session_attrs=$attrs" : '');
}

# The superuser's URL on node $name alone.
sub admin_url {
    my ($self, $name, $db) = @_;
    return "postgresql://postgres:$self->{superuser_pw}\@127.0.0.1:"
        . "$self->{nodes}{$name}{pg_port}/" . ($db // 'postgres');
}

# Patroni's and PostgreSQL's logs of node $name.
sub log {
    my ($self, $name) = @_;
    my $n = $self->{nodes}{$name} or return '';
    return "--- $name patroni.log\n" . slurp("$n->{dir}/patroni.log")
        . "--- $name postgresql.log\n" . slurp("$n->{dir}/log/postgresql.log");
}

# Stops everything: Patroni first (so that nobody restarts a PostgreSQL),
# then each postmaster (Patroni starts it detached, in a session of its
# own), then etcd. kill -9 throughout: the data is thrown away.
sub stop {
    my ($self) = @_;
    return if $$ != $self->{owner} || $self->{stopped}++;
    my @patronis = grep { $_ } map { $_->{patroni} } values %{$self->{nodes}};
    kill 'KILL', -$_ for @patronis;
    waitpid($_, 0) for @patronis;
    for my $name ($self->nodes) {
        my $pid = $self->postmaster_pid($name) or next;
        kill 'KILL', $pid;
        wait_until(10, sub { !alive($pid) });
    }
    if (my $pid = $self->{etcd}) {
        kill 'KILL', -$pid;
        waitpid($pid, 0);
    }
    @live = grep { defined && $_ != $self } @live;
}

sub DESTROY { $_[0]->stop }

1;
