#!/usr/bin/perl
# 91-scale.t -- horizontal scale: several responder instances on one
# database behind one nginx upstream (least_conn), as several hosts would
# run them. Two instances, one on a unix socket and one on TCP
# (PGCHAT_SOCKET=127.0.0.1:PORT); nginx has the balanced server (the shipped
# nginx/pgchat.conf, under /chat/) and one server pinned to each instance,
# so the test knows where each request goes. Then, when the machine allows
# network namespaces, the same across two of them joined by a veth pair: a
# responder on each "host", FastCGI over that link.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(wait_until slurp spew port_open new_db start_group stop_group
             children_of);
use Test::More;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use IO::Socket::UNIX;
use JSON::PP;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(sleep time);

my $TOP = $Stack::TOP;
my $BIN = Stack::binary();
# The responders run as bin/web runs them: never as root.
my @BIN = Stack::as_user($BIN);
my $JSON = JSON::PP->new->utf8->canonical;
my $HTTP = HTTP::Tiny->new(timeout => 60);
my $WAKE = 1.0;    # seconds: a message reaches a parked client on another instance

my $dir = tempdir('scale-XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp',
                  CLEANUP => 1);
chmod 0755, $dir;
Stack::give_dir($dir);    # the responders' sockets

# --- helpers -------------------------------------------------------------

my @netns;    # Stack cleans up the rest: processes and databases

$SIG{INT} = $SIG{TERM} = sub { exit 130 };

END {
    my $status = $?;
    system('ip', 'netns', 'del', $_) for @netns;
    $? = $status;
}

# Starts @cmd in a process group of its own, output appended to $log,
# with RATE_LIMIT=0 and no PGCHAT_SOCKET unless $env says.
sub start {
    my ($log, $env, @cmd) = @_;
    return start_group($log, $log, {PGCHAT_SOCKET => undef, RATE_LIMIT => 0, %$env},
                       @cmd);
}

sub decode {
    my ($res) = @_;
    my $json = eval { $JSON->decode($res->{content}) };
    return ($res->{status}, $json, $res->{content});
}

# HTTP over TCP on 127.0.0.1:PORT, or over a unix socket ("/path"): nginx in
# another network namespace is reachable through its unix sockets only.
sub http {
    my ($where, $method, $path, $form) = @_;
    if ($where =~ /^\d+$/) {
        my $url = "http://127.0.0.1:$where$path";
        return decode($form ? $HTTP->post_form($url, $form) : $HTTP->request($method, $url));
    }
    my $s = IO::Socket::UNIX->new(Peer => $where, Type => SOCK_STREAM)
        or return (599, undef, "connect $where: $!");
    my $body = $form ? $HTTP->www_form_urlencode($form) : '';
    print $s "$method $path HTTP/1.0\r\nHost: localhost\r\n"
        . ($form ? "Content-Type: application/x-www-form-urlencoded\r\n"
                   . 'Content-Length: ' . length($body) . "\r\n" : '')
        . "\r\n$body";
    local $/;
    my $res = <$s> // '';
    my ($head, $content) = split /\r\n\r\n/, $res, 2;
    my ($status) = ($head // '') =~ m{^HTTP/\S+ (\d+)};
    return decode({status => $status // 599, content => $content // ''});
}
sub GET { http($_[0], 'GET', $_[1]) }
sub POST { http($_[0], 'POST', $_[1], $_[2]) }

# GET in a child process; ->() waits and returns (status, json, raw).
sub GET_async {
    my ($where, $path) = @_;
    pipe(my $r, my $w) or die;
    my $pid = fork // die;
    if ($pid == 0) {
        close $r;
        alarm 90;
        my ($st, undef, $raw) = GET($where, $path);
        print $w $JSON->encode([$st, $raw]);
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    return sub {
        local $/;
        my $data = <$r>;
        waitpid $pid, 0;
        my $res = eval { $JSON->decode($data) } // [599, ''];
        my ($st, $raw) = @$res;
        return ($st, eval { $JSON->decode($raw) }, $raw);
    };
}

sub head_of {
    my ($where, $prefix) = @_;
    my (undef, $json) = GET($where, ($prefix // '') . '/recv?since=0');
    return $json->{messages}[-1]{timestamp} // 0;
}

sub parked {
    my ($where) = @_;
    my (undef, $json) = GET($where, '/stats');
    return $json ? $json->{parked} : -1;
}

# Parks a /recv at $park (waiting until that instance counts it), sends
# through $send, and returns whether the message arrived, and how fast.
sub wakes_across {
    my ($park, $send, $id, $text) = @_;
    my $head = head_of($park);
    my $before = parked($park);
    my $w = GET_async($park, "/recv?since=$head");
    wait_until(20, sub { parked($park) > $before })
        or diag("the /recv at $park did not park");
    my $t0 = time;
    my ($st, undef, $raw) = POST($send, '/send', {id => $id, text => $text});
    is($st, 200, "sent '$text'") or diag($raw);
    my ($wst, $wjson, $wraw) = $w->();
    my $took = time - $t0;
    ok($wst == 200 && ($wjson->{messages}[0]{text} // '') eq $text,
       "the client parked on the other instance got '$text'") or diag("$wst $wraw");
    ok($took < $WAKE, sprintf('within %.2f s of the send', $took));
}

sub reports_ok {
    my ($log, $what) = @_;
    my @r = $log =~ /^(.*(?:AddressSanitizer|LeakSanitizer|runtime error|killed by signal|exited with).*)$/mg;
    splice @r, 10 if @r > 10;
    ok(!@r, "$what: no sanitizer reports or crashes") or diag(join "\n", @r);
}

copy("/etc/nginx/$_", "$dir/$_") or die "$_: $!" for qw(fastcgi_params mime.types);

# --- two instances behind one upstream -------------------------------------

{
    my $db = new_db('scale', 'template_pgchat');
    my $url = Stack::db_url($db);
    my $sock_a = "$dir/a.sock";
    my $port_b = Stack::free_port();
    my $a = start("$dir/a.log", {DATABASE_URL => $url, PGCHAT_SOCKET => $sock_a,
                                 WEB_CONCURRENCY => 1}, @BIN);
    my $b = start("$dir/b.log", {DATABASE_URL => $url,
                                 PGCHAT_SOCKET => "127.0.0.1:$port_b",
                                 WEB_CONCURRENCY => 1}, @BIN);
    ok(wait_until(60, sub { -S $sock_a }), 'instance A listens on a unix socket')
        or diag(slurp("$dir/a.log"));
    ok(wait_until(60, sub { port_open($port_b) }), "instance B listens on TCP 127.0.0.1:$port_b")
        or diag(slurp("$dir/b.log"));

    # The shipped snippets, the upstream made of both instances.
    my $upstream = slurp("$TOP/nginx/pgchat-upstream.conf");
    $upstream =~ s{^(\s*)server\s+unix:/run/pgchat/pgchat\.sock;}
                  {${1}least_conn;\n${1}server unix:$sock_a;\n${1}server 127.0.0.1:$port_b;}m
        or die 'pgchat-upstream.conf: no server line';
    spew("$dir/pgchat-upstream.conf", $upstream);
    my $snippet = slurp("$TOP/nginx/pgchat.conf");
    $snippet =~ s{/var/log/nginx/pgchat\.access\.log}{$dir/access.log}g;
    spew("$dir/pgchat.conf", $snippet);
    my ($port, $port_a, $port_bn) = map { Stack::free_port() } 1 .. 3;
    my $pinned = 'include fastcgi_params; fastcgi_read_timeout 60s; access_log '
        . "$dir/access.log pgchat;";
    spew("$dir/nginx.conf", Stack::nginx_conf(prefix => $dir, connections => 512, http => <<"HTTP"));
    include mime.types;
    include $dir/pgchat-upstream.conf;
    server {
        listen 127.0.0.1:$port;
        set \$pgchat_public $TOP/public;
        include $dir/pgchat.conf;
    }
    server {
        listen 127.0.0.1:$port_a;
        location / { $pinned fastcgi_pass unix:$sock_a; }
    }
    server {
        listen 127.0.0.1:$port_bn;
        location / { $pinned fastcgi_pass 127.0.0.1:$port_b; }
    }
HTTP
    my $out = qx{nginx -t -q -p $dir -c $dir/nginx.conf -e stderr 2>&1};
    ok($? == 0, 'nginx -t accepts the configuration') or diag($out);
    my $nginx = start("$dir/nginx.log", {}, 'nginx', '-p', $dir, '-c', "$dir/nginx.conf",
                      '-e', 'stderr');
    wait_until(30, sub { port_open($port) && port_open($port_a) && port_open($port_bn) })
        or BAIL_OUT("nginx did not start:\n" . slurp("$dir/nginx.log"));
    wait_until(60, sub { (GET($port_a, '/who'))[0] == 200 && (GET($port_bn, '/who'))[0] == 200 });

    # Each pinned server reaches its own instance.
    my (undef, $stats_a) = GET($port_a, '/stats');
    my (undef, $stats_b) = GET($port_bn, '/stats');
    is_deeply([$stats_a->{pid}, $stats_b->{pid}], [children_of($a), children_of($b)],
              'the pinned servers reach A\'s and B\'s worker');

    my ($st, $json) = POST($port_a, '/join', {nick => 'alice'});
    my $alice = $json->{id};
    ($st, $json) = POST($port_bn, '/join', {nick => 'bob'});
    my $bob = $json->{id};
    ok($alice && $bob, 'alice joined through A, bob through B');

    wakes_across($port_a, $port_bn, $bob, 'from B to A');
    wakes_across($port_bn, $port_a, $alice, 'from A to B');

    my (undef, $who_a) = GET($port_a, '/who');
    my (undef, $who_b) = GET($port_bn, '/who');
    is_deeply([sort @{$who_a->{nicks}}], [qw(alice bob)], '/who on A lists both');
    is_deeply($who_b->{nicks}, $who_a->{nicks}, '/who on B is the same');
    my (undef, undef, $raw) = GET($port_a, '/join?nick=bob');
    is($raw, '{"error":"Nick in use"}', 'a nick taken through B is taken on A');
    (undef, undef, $raw) = GET($port_bn, '/join?nick=alice');
    is($raw, '{"error":"Nick in use"}', 'and one taken through A is taken on B');

    # Through the balanced server: least_conn spreads the parked requests
    # over both, and one send wakes them all.
    my $head = head_of($port, '/chat');
    my @waiting = map { GET_async($port, "/chat/recv?since=$head") } 1 .. 6;
    my ($pa, $pb) = (0, 0);
    wait_until(30, sub { ($pa, $pb) = (parked($port_a), parked($port_bn)); $pa + $pb >= 6 });
    is($pa + $pb, 6, '6 clients parked through the balanced server');
    ok($pa >= 2 && $pb >= 2, "least_conn spread them over both instances ($pa on A, $pb on B)");
    my $t0 = time;
    ($st) = POST($port, '/chat/send', {id => $alice, text => 'to everyone'});
    is($st, 200, 'a send through the balanced server');
    my $all = 0;
    for my $w (@waiting) {
        my ($wst, $wjson) = $w->();
        $all++ if $wst == 200 && ($wjson->{messages}[0]{text} // '') eq 'to everyone';
    }
    my $took = time - $t0;
    is($all, 6, 'reaches every parked client, on both instances');
    ok($took < $WAKE, sprintf('within %.2f s', $took));

    is(stop_group($a) >> 8, 0, 'instance A stops with status 0');
    ($st, $json) = GET($port, '/chat/who');
    is($st, 200, 'with A gone, the balanced server still answers (through B)');
    is(stop_group($b) >> 8, 0, 'instance B stops with status 0');
    stop_group($nginx, 'QUIT');
    reports_ok(slurp("$dir/a.log"), 'instance A');
    reports_ok(slurp("$dir/b.log"), 'instance B');
}

# --- two hosts: network namespaces --------------------------------------------

SKIP: {
    my $ip = (grep { -x } '/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip')[0];
    skip 'network namespaces need root and iproute2', 18 unless $> == 0 && $ip;
    # Both hosts are namespaces of our own, joined by a veth pair; the
    # addresses (198.18.0.0/15, set aside for test networks) exist only in
    # there. The database stays on its unix socket, which is a file and so
    # reachable from every network namespace.
    my ($ns_a, $ns_b) = ("pgchat$$" . 'a', "pgchat$$" . 'b');
    my ($ip_a, $ip_b) = ('198.18.0.1', '198.18.0.2');
    if (system("$ip netns add $ns_a 2>/dev/null") != 0) {
        skip 'cannot create network namespaces here', 18;
    }
    push @netns, $ns_a;
    system("$ip netns add $ns_b") == 0 or skip 'cannot create two network namespaces', 18;
    push @netns, $ns_b;
    my $veth = "pgc$$";
    my @setup = (
        "link add ${veth}a netns $ns_a type veth peer name ${veth}b netns $ns_b",
        "-n $ns_a addr add $ip_a/30 dev ${veth}a",
        "-n $ns_b addr add $ip_b/30 dev ${veth}b",
        "-n $ns_a link set ${veth}a up", "-n $ns_b link set ${veth}b up",
        "-n $ns_a link set lo up", "-n $ns_b link set lo up",
    );
    for my $cmd (@setup) {
        system("$ip $cmd") == 0 or skip "ip $cmd failed", 18;
    }

    my $n = "$dir/netns";
    mkdir $n;
    my $url = Stack::db_url(new_db('scale', 'template_pgchat'));
    # B accepts FastCGI from host A's address only (FCGI_WEB_SERVER_ADDRS).
    # A listens on a host address too: it names the one nginx (its own).
    my $a = start("$n/a.log", {DATABASE_URL => $url, PGCHAT_SOCKET => "$ip_a:9000",
                               FCGI_WEB_SERVER_ADDRS => $ip_a,
                               WEB_CONCURRENCY => 1}, $ip, 'netns', 'exec', $ns_a, @BIN);
    my $b = start("$n/b.log", {DATABASE_URL => $url, PGCHAT_SOCKET => "$ip_b:9000",
                               FCGI_WEB_SERVER_ADDRS => $ip_a,
                               WEB_CONCURRENCY => 1}, $ip, 'netns', 'exec', $ns_b, @BIN);
    for ([$a, 'a'], [$b, 'b']) {
        my ($pid, $name) = @$_;
        wait_until(60, sub { slurp("$n/$name.log") =~ /worker started/ })
            or diag(slurp("$n/$name.log"));
    }
    my $net = sub { readlink "/proc/$_[0]/ns/net" // '?' };
    my @nets = ($net->($$), $net->($a), $net->($b));
    ok($nets[0] ne $nets[1] && $nets[1] ne $nets[2] && $nets[0] ne $nets[2],
       'the test, responder A and responder B are in three network namespaces');

    # nginx on host A: HTTP on unix sockets (for the test to reach it),
    # FastCGI over TCP to A (local) and B (over the veth).
    my ($via_a, $via_b, $via_both) = map { "$n/$_.http" } qw(via-a via-b via-both);
    my $fcgi = "include $dir/fastcgi_params; fastcgi_read_timeout 60s;";
    spew("$n/nginx.conf", Stack::nginx_conf(prefix => $n, connections => 512, http => <<"HTTP"));
    access_log off;
    upstream both { least_conn; server $ip_a:9000; server $ip_b:9000; }
    server { listen unix:$via_a; location / { $fcgi fastcgi_pass $ip_a:9000; } }
    server { listen unix:$via_b; location / { $fcgi fastcgi_pass $ip_b:9000; } }
    server { listen unix:$via_both; location / { $fcgi fastcgi_pass both; } }
HTTP
    my $nginx = start("$n/nginx.log", {}, $ip, 'netns', 'exec', $ns_a, 'nginx', '-p', $n,
                      '-c', "$n/nginx.conf", '-e', 'stderr');
    ok(wait_until(60, sub { -S $via_a && -S $via_b && -S $via_both
                            && (GET($via_a, '/who'))[0] == 200
                            && (GET($via_b, '/who'))[0] == 200 }),
       'nginx on host A reaches both responders')
        or diag(slurp("$n/nginx.log") . slurp("$n/a.log") . slurp("$n/b.log"));
    my (undef, $stats_b) = GET($via_b, '/stats');
    is($stats_b->{pid}, (children_of($b))[0], 'the B server reaches the responder on host B');

    my (undef, $json) = POST($via_a, '/join', {nick => 'carol'});
    my $carol = $json->{id};
    (undef, $json) = POST($via_b, '/join', {nick => 'dave'});
    my $dave = $json->{id};
    ok($carol && $dave, 'carol joined on host A, dave on host B');
    wakes_across($via_b, $via_a, $carol, 'from host A to host B');
    wakes_across($via_a, $via_b, $dave, 'from host B to host A');
    my (undef, $who_a) = GET($via_a, '/who');
    my (undef, $who_b) = GET($via_b, '/who');
    is_deeply([sort @{$who_b->{nicks}}], [sort @{$who_a->{nicks}}], '/who is the same on both hosts');
    my (undef, undef, $raw) = GET($via_both, '/join?nick=carol');
    is($raw, '{"error":"Nick in use"}', 'and so are the nicks');

    # A bare FastCGI request for /who to B, from host A (allowed) and from
    # host B itself (not in FCGI_WEB_SERVER_ADDRS): what comes back.
    my $raw_fcgi = sub {
        my ($ns) = @_;
        my $script = <<'PERL';
use IO::Socket::INET;
$SIG{PIPE} = 'IGNORE';
my $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], Timeout => 10) or die "connect: $!";
my $rec = sub { pack('CCnnCC', 1, $_[0], 1, length $_[1], 0, 0) . $_[1] };
my $pair = sub { pack('CC', length $_[0], length $_[1]) . $_[0] . $_[1] };
print $s $rec->(1, pack('nCx5', 1, 0)), $rec->(4, $pair->('REQUEST_METHOD', 'GET')
    . $pair->('DOCUMENT_URI', '/who')), $rec->(4, ''), $rec->(5, '');
local $/;
my $got = <$s> // '';
print length($got), ' ', ($got =~ /(Status: \d+)/ ? $1 : 'no status');
PERL
        spew("$n/fcgi.pl", $script);
        return scalar `$ip netns exec $ns perl $n/fcgi.pl $ip_b:9000 2>&1`;
    };
    like($raw_fcgi->($ns_a), qr/^\d+ Status: 200$/, 'B answers a FastCGI request from host A');
    is($raw_fcgi->($ns_b), '0 no status', 'and closes one from another address unanswered');
    like(slurp("$n/b.log"), qr/refused a FastCGI connection from \Q$ip_b\E/, 'which B logs');

    is(stop_group($a) >> 8, 0, 'responder A stops with status 0');
    is(stop_group($b) >> 8, 0, 'responder B stops with status 0');
    stop_group($nginx, 'QUIT');
    reports_ok(slurp("$n/a.log") . slurp("$n/b.log"), 'the responders on two hosts');
}

done_testing;
