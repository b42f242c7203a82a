# Stack.pm -- starts the real thing for a test: a database cloned from the
# migrated template, the responder (the sanitizer build) and nginx on a free
# port; talks HTTP to it; stops it and checks the logs for sanitizer
# reports. Core Perl modules only.
#
#   my $s = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 2});
#   my ($status, $json) = $s->get('/join?nick=alice');
#   my $w = $s->get_async('/recv?since=0');   # in a child process
#   my ($status2, $json2) = $w->wait;
#   $s->finish;                                # stops, checks the logs
#
# Tests wait on facts, never on time (t/README): wait_for() polls a
# condition and dies with what it waited for when its deadline passes;
# parked() waits for the responder's pgchat_parked_requests, metric() reads
# one sample of its /metrics, log_mark() and wait_log() wait for a log line
# written after a mark.
#
#   my $w = $s->get_async("/recv?since=$head");
#   $s->parked(1);                             # it waits in the responder
#   my $mark = $s->log_mark;
#   ...
#   $s->wait_log(qr/listening for new messages/, $mark);
package Stack;

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use JSON::PP;
use Socket qw(SOCK_STREAM);
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

use Exporter qw(import);
our @EXPORT_OK = qw(wait_until wait_for slurp spew port_open new_db
                    start_group stop_group forget_group reap children_of
                    as_user run_user binary fcgi_get);

our $TOP = abs_path(dirname(__FILE__) . '/../..');
my $JSON = JSON::PP->new->utf8->canonical;

sub pg_dir { $ENV{PGCHAT_TEST_PG} or die "run me through make test\n" }

# Who everything runs as, as bin/web has it: as root the unprivileged
# PGCHAT_USER (pgchat, which bin/pg created), otherwise ourselves. It owns
# the cluster, and the chat's role has its name.
sub run_user { $> == 0 ? ($ENV{PGCHAT_USER} || 'pgchat') : scalar getpwuid($>) }
sub pg_user { run_user() }

# @cmd as run_user(): through setpriv when we are root, which keeps the
# environment and the descriptors and execs in place (same pid).
sub as_user {
    my @cmd = @_;
    return @cmd unless $> == 0;
    my $u = run_user();
    return ('setpriv', "--reuid=$u", "--regid=$u", '--init-groups', '--', @cmd);
}

# The chat's role (peer authentication: root and run_user() may use it).
sub db_url {
    my ($db) = @_;
    return "postgresql:///$db?host=" . pg_dir() . "/run&user=" . pg_user();
}

# The cluster's superuser, for creating and dropping databases: its
# password is in the cluster's directory (bin/pg).
sub admin_url {
    my $dir = pg_dir();
    return "postgresql:///postgres?host=$dir/run&user=postgres"
        . "&passfile=$dir/superuser.pgpass";
}

# A directory run_user() may write in (sockets, logs of its own).
sub give_dir {
    my ($dir) = @_;
    return unless $> == 0;
    my (undef, undef, $uid, $gid) = getpwnam(run_user()) or die "no user " . run_user();
    chown $uid, $gid, $dir or die "chown $dir: $!";
}

# Runs SQL through psql; returns its unaligned output, rows split by \n.
sub psql {
    my ($url, $sql) = @_;
    open(my $fh, '-|', 'psql', '-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1',
         '-d', $url, '-c', $sql) or die "psql: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh or die "psql failed on: $sql\n";
    $out =~ s/\s+\z//;
    return $out;
}

# Polls $cond every 0.1 s for up to $timeout seconds; returns its last value.
sub wait_until {
    my ($timeout, $cond) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        my $r = $cond->();
        return $r if $r;
        sleep 0.1;
    }
    return $cond->();
}

# Polls $cond every 0.05 s until it returns true, for up to $timeout
# seconds; returns that true value. On timeout it dies with "timed out
# after N s waiting for: $what" ($what a string, or a sub that says what
# was last seen), which fails the test file.
sub wait_for {
    my ($timeout, $what, $cond) = @_;
    my $end = time + $timeout;
    while (1) {
        my $r = $cond->();
        return $r if $r;
        last if time >= $end;
        sleep 0.05;
    }
    my $r = $cond->();
    return $r if $r;
    $what = $what->() if ref $what eq 'CODE';
    die "timed out after $timeout s waiting for: $what\n";
}

# The responder the tests run: PGCHAT_TEST_BINARY (another build, say a
# mutant in a scratch copy, or the optimised one bench/history runs), else
# the sanitizer build of this checkout.
sub binary { $ENV{PGCHAT_TEST_BINARY} // "$TOP/fcgi/pgchat-asan" }

# One GET straight to a responder's FastCGI socket (a unix path, or
# host:port), not through nginx; as from 127.0.0.1. Returns (status,
# body), (0, error) when the socket cannot be reached.
sub fcgi_get {
    my ($socket, $uri, $query) = @_;
    my $sock = $socket =~ m{^/}
        ? IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $socket)
        : IO::Socket::INET->new(PeerAddr => $socket, Timeout => 5);
    return (0, "connect $socket: $!") unless $sock;
    my $record = sub {
        my ($type, $content) = @_;
        return pack('CCnnCC', 1, $type, 1, length $content, 0, 0) . $content;
    };
    my %p = (REQUEST_METHOD => 'GET', DOCUMENT_URI => $uri,
             QUERY_STRING => $query // '', REMOTE_ADDR => '127.0.0.1',
             SERVER_PROTOCOL => 'HTTP/1.1');
    my $params = join '', map {
        my ($k, $v) = ($_, $p{$_});
        (length $k < 128 ? pack('C', length $k) : pack('N', length($k) | 0x80000000))
        . (length $v < 128 ? pack('C', length $v) : pack('N', length($v) | 0x80000000))
        . $k . $v;
    } sort keys %p;
    print $sock $record->(1, pack('nCx5', 1, 0)) . $record->(4, $params)
        . $record->(4, '') . $record->(5, '');
    my ($out, $buf, $end) = ('', '', time + 30);
    my $sel = IO::Select->new($sock);
    while (time < $end) {
        while (length $buf >= 8) {
            my (undef, $type, undef, $len, $pad) = unpack('CCnnC', $buf);
            last if length $buf < 8 + $len + $pad;
            my $content = substr($buf, 8, $len);
            substr($buf, 0, 8 + $len + $pad, '');
            $out .= $content if $type == 6;
            if ($type == 3) {
                my ($head, $body) = split /\r?\n\r?\n/, $out, 2;
                my ($status) = ($head // '') =~ /^Status: (\d+)/mi;
                return ($status // 200, $body // '');
            }
        }
        $sel->can_read($end - time) or last;
        sysread($sock, my $chunk, 65536) or last;
        $buf .= $chunk;
    }
    return (0, "no complete answer from $socket");
}

# A file's contents, '' when it cannot be read.
sub slurp {
    my ($file) = @_;
    open(my $fh, '<', $file) or return '';
    local $/;
    return <$fh> // '';
}

sub spew {
    my ($file, $text) = @_;
    open(my $fh, '>', $file) or die "$file: $!";
    print $fh $text;
    close $fh or die "$file: $!";
}

# Whether something accepts TCP connections on 127.0.0.1:$port.
sub port_open {
    my ($port) = @_;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                 Timeout => 2) ? 1 : 0;
}

# --- processes and databases a test makes itself, outside a Stack ----------
# Whatever happens, they are gone when the test exits.

my (%groups, @dbs);

END {
    my $status = $?;
    kill 'KILL', -$_ for keys %groups;    # each a process group of ours
    waitpid($_, 0) for keys %groups;
    for my $db (@dbs) {
        eval { psql(admin_url(), qq{DROP DATABASE IF EXISTS "$db" WITH (FORCE)}) };
    }
    $? = $status;
}

# A fresh database named after $prefix: a clone of $template, or empty.
sub new_db {
    my ($prefix, $template) = @_;
    my $name = "${prefix}_${$}_" . scalar(@dbs);
    psql(admin_url(), qq{CREATE DATABASE "$name" OWNER "} . pg_user() . '"'
         . ($template ? qq{ TEMPLATE "$template"} : ''));
    push @dbs, $name;
    return $name;
}

# Starts @cmd in a process group of its own, from the checkout, stdout and
# stderr appended to files. Environment values of undef delete the name.
sub start_group {
    my ($out, $err, $env, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        open(STDIN, '<', '/dev/null') or die;
        open(STDOUT, '>>', $out) or die;
        open(STDERR, '>>', $err) or die;
        chdir $TOP or die;
        for my $k (keys %$env) {
            if (defined $env->{$k}) { $ENV{$k} = $env->{$k} }
            else { delete $ENV{$k} }
        }
        exec @cmd or POSIX::_exit(127);
    }
    $groups{$pid} = 1;
    return $pid;
}

# The group of $pid has been stopped by other means: not ours to kill.
sub forget_group { delete $groups{$_[0]} }

# Reaps child $pid within $timeout seconds: its wait status, or undef.
sub reap {
    my ($pid, $timeout) = @_;
    my $status;
    wait_until($timeout, sub {
        my $r = waitpid($pid, WNOHANG);
        $status = $? if $r == $pid;
        return $r != 0;
    });
    return $status;
}

# Sends $signal (TERM) to a process start_group() started; kills its whole
# group if it has not exited 30 s later. Returns its wait status, undef
# when it had to be killed.
sub stop_group {
    my ($pid, $signal) = @_;
    kill $signal // 'TERM', $pid;
    my $status = reap($pid, 30);
    unless (defined $status) {
        kill 'KILL', -$pid;
        reap($pid, 5);
    }
    forget_group($pid);
    return $status;
}

# The pids whose parent is $parent.
sub children_of {
    my ($parent) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open(my $fh, '<', $stat) or next;
        my $line = <$fh> // next;
        my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S+ (\d+)/ or next;
        push @kids, $pid if $ppid == $parent;
    }
    return @kids;
}

# A whole nginx.conf of a test's own, as text: the main and events
# blocks, an http block with every temporary path under $o{prefix}, then
# $o{http} (the test's upstreams, servers and the rest) inside it. Started
# as root, nginx runs its workers as the stack's user, as bin/nginx-conf
# has it.
sub nginx_conf {
    my (%o) = @_;
    my $d = $o{prefix};
    my $user = $> == 0 ? 'user ' . run_user() . ';' : '';
    my $connections = $o{connections} // 256;
    return <<"CONF";
$user
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log stderr warn;
events { worker_connections $connections; }
http {
    client_body_temp_path $d/client_body;
    fastcgi_temp_path $d/fastcgi;
    proxy_temp_path $d/proxy;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
$o{http}
}
CONF
}

sub free_port {
    my $sock = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                     LocalPort => 0, ReuseAddr => 1)
        or die "cannot find a free port: $!";
    my $port = $sock->sockport;
    close $sock;
    return $port;
}

# Options: workers (default 2), env (settings for the responder and for
# bin/nginx-conf; RATE_LIMIT is 0 unless given), db (share another stack's
# database), responders (several responder instances, each with its own
# socket, behind one nginx upstream), pgbouncer (DATABASE_URL through a
# PgBouncer of the stack's own in transaction mode, LISTEN_DATABASE_URL
# direct; default: PGCHAT_TEST_PGBOUNCER, so that a whole test file runs
# through one, as t/87-pgbouncer.t does), up (the path that answers 200
# once the stack is up; default /who, which needs a login with
# PGCHAT_AUTH=request), db_route ([host, port]: the responder and its
# PgBouncer reach the cluster over TCP there, as History::Net makes it;
# the test's own sql() keeps the socket).
sub new {
    my ($class, %opt) = @_;
    my $self = bless {
        workers => $opt{workers} // 2,
        responders => $opt{responders} // 1,
        nofile => $opt{nofile},  # the responder's descriptor limit
        up => $opt{up} // '/who',
        env => {RATE_LIMIT => 0, %{$opt{env} // {}}},
        dir => tempdir('stack-XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp',
                       CLEANUP => 1),
    }, $class;
    chmod 0755, $self->{dir};
    give_dir($self->{dir});    # the responder makes its sockets there
    if ($opt{db}) {
        $self->{db} = $opt{db};
    } else {
        $self->{db} = 't' . $$ . '_' . int(rand(1e9));
        psql(admin_url(), qq{CREATE DATABASE "$self->{db}" OWNER "}
             . pg_user() . '" TEMPLATE template_pgchat');
        $self->{own_db} = 1;
    }
    $self->{database_url} = db_url($self->{db});
    $self->{responder_url} = $self->{database_url};
    if (my $route = $opt{db_route}) {
        $self->{db_route} = $route;
        $self->{responder_url} = 'postgresql://' . pg_user() . "\@$route->[0]:$route->[1]/"
            . "$self->{db}?sslmode=disable";
        $self->{env}{LISTEN_DATABASE_URL} //= $self->{responder_url};
    }
    $self->start_pgbouncer if $opt{pgbouncer} // $ENV{PGCHAT_TEST_PGBOUNCER};
    $self->{port} = free_port();
    $self->{sockets} = [map { "$self->{dir}/pgchat$_.sock" } 1 .. $self->{responders}];
    $self->{http} = HTTP::Tiny->new(timeout => 60, keep_alive => 1);
    $self->start_responder;
    $self->start_nginx;
    $self->wait_up;
    return $self;
}

sub url { my ($self, $path) = @_; "http://127.0.0.1:$self->{port}" . ($path // '/') }
sub database_url { $_[0]{database_url} }
sub dir { $_[0]{dir} }
sub port { $_[0]{port} }
sub sql { my ($self, $sql) = @_; psql($self->{database_url}, $sql) }

sub spawn {
    my ($log, $env, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>>', $log) or die;
        open(STDERR, '>>', $log) or die;
        open(STDIN, '<', '/dev/null') or die;
        %ENV = (%ENV, %$env);
        exec @cmd or die "exec $cmd[0]: $!";
    }
    return $pid;
}

# Debian's pgbouncer (1.18: no prepared statements) in transaction mode on
# a free port, as run_user(), reaching the test cluster by its socket (peer
# authentication; by the stack's db_route where it has one); the
# responder's DATABASE_URL goes through it, its LISTEN connection straight
# to the cluster.
sub start_pgbouncer {
    my ($self) = @_;
    my $dir = "$self->{dir}/pgbouncer";
    mkdir $dir or die "mkdir $dir: $!";
    give_dir($dir);
    my $user = pg_user();
    $self->{pgbouncer_port} = free_port();
    spew("$dir/userlist.txt", qq{"$user" ""\n});
    spew("$dir/pgbouncer.ini", <<"INI");
[databases]
* = @{[$self->{db_route} ? "host=$self->{db_route}[0] port=$self->{db_route}[1]" : 'host=' . pg_dir() . '/run']}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $self->{pgbouncer_port}
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = $user
pool_mode = transaction
default_pool_size = 10
max_client_conn = 500
server_reset_query =
ignore_startup_parameters = extra_float_digits
; A login refused while PostgreSQL starts up is tried again after 1 s,
; not the default 15 (sends answered 503 for that long after a restart).
server_login_retry = 1
INI
    $self->{pgbouncer} = spawn("$self->{dir}/pgbouncer.log", {},
                               as_user('pgbouncer', "$dir/pgbouncer.ini"));
    die "pgbouncer did not start:\n" . $self->log('pgbouncer')
        unless wait_until(10, sub { port_open($self->{pgbouncer_port}) });
    $self->{responder_url} = "postgresql://$user\@127.0.0.1:"
        . "$self->{pgbouncer_port}/$self->{db}";
    $self->{env}{LISTEN_DATABASE_URL} //= $self->{database_url};
}

# The URL the responder's writer uses: through PgBouncer when there is one.
sub responder_url { $_[0]{responder_url} }

# The PgBouncer's admin console: SHOW $what, rows of fields split on |.
sub pgbouncer_show {
    my ($self, $what) = @_;
    my $out = psql("postgresql://" . pg_user() . "\@127.0.0.1:"
                   . "$self->{pgbouncer_port}/pgbouncer", "SHOW $what");
    return map { [split /\|/, $_, -1] } split /\n/, $out;
}

sub start_responder {
    my ($self, $which) = @_;
    for my $i (defined $which ? ($which) : (0 .. $#{$self->{sockets}})) {
        my $socket = $self->{sockets}[$i];
        my @cmd = as_user(binary());
        @cmd = ('sh', '-c', 'ulimit -n "$0" && exec "$@"', $self->{nofile}, @cmd)
            if $self->{nofile};
        unlink $socket;
        $self->{responder}[$i] = spawn("$self->{dir}/responder.log", {
            DATABASE_URL => $self->{responder_url},
            PGCHAT_SOCKET => $socket,
            WEB_CONCURRENCY => $self->{workers},
            %{$self->{env}},
        }, @cmd);
        wait_until(30, sub { -S $socket })
            or die "the responder did not create its socket:\n"
                . $self->log('responder');
    }
}

# The pid of responder instance $which (default 0).
sub responder_pid { my ($self, $which) = @_; $self->{responder}[$which // 0] }

# The pids of the worker processes of responder instance $which.
sub worker_pids {
    my ($self, $which) = @_;
    my $parent = $self->responder_pid($which) or return;
    return children_of($parent);
}

# Stops the responder instances (or just $which) with SIGTERM (or $signal);
# returns the seconds it took.
sub stop_responder {
    my ($self, $signal, $which) = @_;
    my $t0 = time;
    for my $i (defined $which ? ($which) : (0 .. $#{$self->{sockets}})) {
        my $pid = $self->{responder}[$i] or next;
        kill $signal // 'TERM', $pid;
        waitpid $pid, 0;
        $self->{responder_status} = $?;
        $self->{responder}[$i] = undef;
    }
    return time - $t0;
}

# Reloads nginx's configuration (SIGHUP), as `nginx -s reload` does.
sub reload_nginx { my ($self) = @_; kill 'HUP', $self->{nginx} }

sub restart_responder {
    my ($self) = @_;
    $self->stop_responder;
    $self->start_responder;
    $self->wait_up;
}

sub start_nginx {
    my ($self) = @_;
    my $var = "$self->{dir}/nginx";
    mkdir $var;
    my $sockets = join ',', @{$self->{sockets}};
    {
        local %ENV = (%ENV, %{$self->{env}});
        system("$TOP/bin/nginx-conf 127.0.0.1:$self->{port} $sockets $var "
               . "$self->{dir}/access.log > $var/nginx.conf") == 0
            or die "cannot render nginx.conf";
    }
    $self->{nginx} = spawn("$self->{dir}/nginx.log", {}, 'nginx', '-p', $var,
                           '-c', "$var/nginx.conf", '-e', 'stderr');
}

sub wait_up {
    my ($self) = @_;
    my $http = HTTP::Tiny->new(timeout => 2);
    wait_until(30, sub { $http->get($self->url($self->{up}))->{status} == 200 })
        or die "the stack did not come up:\n" . $self->log('responder')
            . $self->log('nginx');
}

# --- facts to wait on -------------------------------------------------------

# Every sample of the /metrics of each running responder instance, asked
# on its own socket (so that two instances behind one nginx are both
# counted), added up: {sample => value}, the sample as printed, labels
# included ('pgchat_requests_total{endpoint="who",code="200"}').
sub metrics {
    my ($self) = @_;
    my %sum;
    for my $i (0 .. $#{$self->{sockets}}) {
        next unless $self->{responder}[$i];
        my ($status, $body) = fcgi_get($self->{sockets}[$i], '/metrics');
        die "/metrics of $self->{sockets}[$i]: $status $body\n" unless $status == 200;
        for (split /\n/, $body) {
            next if /^#/;
            my ($k, $v) = /^(\S+(?:\{[^}]*\})?) (\S+)$/ or next;
            $sum{$k} += $v;
        }
    }
    return \%sum;
}

# One sample of metrics(); undef when no instance has it.
sub metric {
    my ($self, $name) = @_;
    return $self->metrics->{$name};
}

# Waits (up to $timeout, default 30 s) until exactly $n requests are
# parked in the stack's responders (pgchat_parked_requests: /recv and
# /events waiting for news). A /recv the test has started is, once
# counted, past every check and waiting: a send now must wake it.
sub parked {
    my ($self, $n, $timeout) = @_;
    my $seen;
    return wait_for($timeout // 30, sub { "$n parked requests (the metric says "
                                          . ($seen // 'nothing') . ')' },
                    sub { $seen = $self->metric('pgchat_parked_requests') // 0;
                          $seen == $n ? "0 but true" : 0 });
}

# Where a log ends now: wait_log() looks only after it. $name is a log
# of the stack's directory (responder, nginx, access; default responder).
sub log_mark {
    my ($self, $name) = @_;
    $name //= 'responder';
    return {name => $name, at => length $self->log($name)};
}

# Waits (up to $timeout, default 30 s) for a line matching $re in the log
# of $mark written after $mark (default: the responder's, from its
# start); returns the line.
sub wait_log {
    my ($self, $re, $mark, $timeout) = @_;
    $mark //= {name => 'responder', at => 0};
    my $line;
    wait_for($timeout // 30, "a line matching $re in $mark->{name}.log", sub {
        my $text = substr($self->log($mark->{name}), $mark->{at});
        ($line) = $text =~ /^(.*$re.*)$/m;
        return defined $line;
    });
    return $line;
}

# The pids of nginx's worker processes now.
sub nginx_workers { my ($self) = @_; children_of($self->{nginx}) }

# Waits until nginx runs a worker that is not one of @old (the new
# configuration is in force after a reload).
sub nginx_reloaded {
    my ($self, @old) = @_;
    my %old = map { $_ => 1 } @old;
    wait_for(30, 'a new nginx worker after the reload',
             sub { grep { !$old{$_} } $self->nginx_workers });
}

sub log {
    my ($self, $name) = @_;
    open(my $fh, '<', "$self->{dir}/$name.log") or return '';
    local $/;
    return <$fh> // '';
}

sub decode {
    my ($res) = @_;
    my $json = eval { $JSON->decode($res->{content}) };
    return ($res->{status}, $json, $res->{content}, $res);
}

# GET path; returns (status, decoded JSON or undef, raw body, response).
sub get {
    my ($self, $path) = @_;
    return decode($self->{http}->get($self->url($path)));
}

# POST a form; params is a hash or array ref of name => value.
sub post {
    my ($self, $path, $params, $headers) = @_;
    my $body = ref $params ? $self->{http}->www_form_urlencode($params)
                           : $params;
    return decode($self->{http}->request('POST', $self->url($path), {
        headers => {'Content-Type' => 'application/x-www-form-urlencoded',
                    %{$headers // {}}},
        content => $body,
    }));
}

sub request {
    my ($self, $method, $path, $opt) = @_;
    return decode($self->{http}->request($method, $self->url($path), $opt // {}));
}

sub join_nick {
    my ($self, $nick, $room) = @_;
    my ($status, $json) = $self->get("/join?nick=$nick"
                                     . ($room ? "&room=$room" : ''));
    die "cannot join as $nick: $status" unless $status == 200;
    return $json->{id};
}

# Starts a GET in a child process, with %headers; ->wait returns what
# get() would.
sub get_async {
    my ($self, $path, %headers) = @_;
    return Stack::Pending->new($self->url($path), \%headers);
}

# Stops everything and checks, as one more test, that no sanitizer spoke.
# With no_test => 1 it only returns the reports (for scripts whose TAP
# comes from elsewhere).
sub finish {
    my ($self, %opt) = @_;
    return if $self->{finished}++;
    $self->stop_responder;
    if (my $pid = delete $self->{nginx}) {
        kill 'QUIT', $pid;
        waitpid $pid, 0;
    }
    if (my $pid = delete $self->{pgbouncer}) {
        kill 'INT', $pid;
        waitpid $pid, 0;
    }
    my $log = $self->log('responder');
    # SIGKILL (9) comes only from a test that kills a worker on purpose.
    my @reports = $log =~ /^(.*(?:AddressSanitizer|LeakSanitizer|runtime error|killed by signal (?!9\b)).*)$/mg;
    splice @reports, 20 if @reports > 20;
    if ($self->{own_db}) {
        eval { psql(admin_url(), qq{DROP DATABASE "$self->{db}" WITH (FORCE)}) };
    }
    return @reports if $opt{no_test};
    ok(!@reports, 'the responder ran without sanitizer reports or crashes')
        or diag(join("\n", @reports));
    return @reports;
}

sub DESTROY {
    my ($self) = @_;
    return if $self->{finished};
    my @pids = grep { $_ } @{$self->{responder} // []}, $self->{nginx},
        $self->{pgbouncer};
    kill 'KILL', grep { $_ } @{$self->{responder} // []}, $self->{pgbouncer};
    kill 'QUIT', $self->{nginx} if $self->{nginx};
    waitpid($_, 0) for @pids;
}

package Stack::Pending;

use JSON::PP;
use HTTP::Tiny;
use Time::HiRes qw(time);

sub new {
    my ($class, $url, $headers) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $t0 = time;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        my $res = HTTP::Tiny->new(timeout => 90)->get($url, {headers => $headers // {}});
        print $w JSON::PP->new->encode({status => $res->{status},
                                        content => $res->{content}});
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    return bless {pid => $pid, fh => $r, t0 => $t0}, $class;
}

# Returns (status, json, raw, seconds taken).
sub wait {
    my ($self) = @_;
    local $/;
    my $fh = $self->{fh};
    my $data = <$fh>;
    waitpid $self->{pid}, 0;
    my $res = JSON::PP->new->decode($data);
    my $json = eval { JSON::PP->new->utf8->decode($res->{content}) };
    return ($res->{status}, $json, $res->{content}, time - $self->{t0});
}

1;
