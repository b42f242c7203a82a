#!/usr/bin/perl
# 90-deploy.t -- the ways of running pgchat outside `make run`, each started
# as its operator would start it:
#   - the Procfile (bin/web) on an empty database, twice at once, and how it
#     ends: a dead responder makes it exit non-zero, SIGTERM exits 0, and
#     nothing is left running either way;
#   - nginx/pgchat.conf dropped into an nginx server of its own, under /chat/;
#   - the responder under a FastCGI process manager (spawn-fcgi, and
#     systemd's socket activation as systemd-socket-activate emulates it),
#     and contrib/'s unit files through systemd-analyze verify;
#   - operating it: /healthz, /stats, the psql views, MESSAGE_RETENTION and
#     SIGHUP's rolling restart of the workers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(wait_until wait_for slurp spew port_open new_db start_group stop_group
             forget_group reap);
use Test::More;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

my $TOP = $Stack::TOP;
my $BIN = Stack::binary();
my $JSON = JSON::PP->new->utf8->canonical;
my $HTTP = HTTP::Tiny->new(timeout => 60);
my $ROOT = $> == 0;

my $dir = tempdir('deploy-XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp',
                  CLEANUP => 1);
chmod 0755, $dir;
Stack::give_dir($dir);    # responders as run_user() make their sockets here

# --- helpers -------------------------------------------------------------

$SIG{INT} = $SIG{TERM} = sub { exit 130 };    # so that END cleans up

# Every process: pid => {ppid, state, comm, start}.
sub processes {
    my %p;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open(my $fh, '<', $stat) or next;
        my $line = <$fh> // next;
        my ($pid, $comm, $rest) = $line =~ /^(\d+) \((.*)\) (.*)$/s or next;
        my @f = split ' ', $rest;
        $p{$pid} = {ppid => $f[1], state => $f[0], comm => $comm, start => $f[19]};
    }
    return \%p;
}

# The descendants of $root, as "pid:starttime" (a pid may be reused).
sub descendants {
    my ($root) = @_;
    my $p = processes();
    my (%kids, @out);
    push @{$kids{$p->{$_}{ppid}}}, $_ for keys %$p;
    my @todo = ($root);
    while (defined(my $pid = shift @todo)) {
        for my $kid (@{$kids{$pid} // []}) {
            push @out, "$kid:$p->{$kid}{start}";
            push @todo, $kid;
        }
    }
    return @out;
}

# Those of the "pid:starttime" still running (zombies count as gone).
sub running {
    my $p = processes();
    return grep {
        my ($pid, $start) = split /:/;
        $p->{$pid} && $p->{$pid}{start} eq $start && $p->{$pid}{state} !~ /^[ZX]$/;
    } @_;
}

sub children_named {
    my ($parent, $comm) = @_;
    my $p = processes();
    return grep { $p->{$_}{ppid} == $parent && $p->{$_}{comm} eq $comm } keys %$p;
}

# Processes whose command line or environment mention $text.
sub mentioning {
    my ($text) = @_;
    my @found;
    for my $d (glob '/proc/[0-9]*') {
        my ($pid) = $d =~ /(\d+)$/;
        next if $pid == $$;
        my $seen = slurp("$d/cmdline") . "\0" . slurp("$d/environ");
        next unless index($seen, $text) >= 0;
        my ($state) = slurp("$d/stat") =~ /\) (\S)/;
        push @found, $pid if $state && $state !~ /^[ZX]$/;
    }
    return @found;
}

sub decode {
    my ($res) = @_;
    my $json = eval { $JSON->decode($res->{content}) };
    return ($res->{status}, $json, $res->{content}, $res);
}
sub GET { decode($HTTP->get($_[0], {headers => $_[1] // {}})) }
sub POST { decode($HTTP->post_form($_[0], $_[1])) }

# The sanitizer reports and crashes in a responder's log.
sub reports {
    my ($log) = @_;
    my @r = $log =~ /^(.*(?:AddressSanitizer|LeakSanitizer|runtime error|killed by signal (?!9\b)).*)$/mg;
    splice @r, 10 if @r > 10;
    return @r;
}

sub clean_log_ok {
    my ($log, $what) = @_;
    my @r = reports($log);
    ok(!@r, "$what: no sanitizer reports or crashes") or diag(join "\n", @r);
}

# Requests parked in the responder behind $base, by its /metrics.
sub parked_at {
    my ($base) = @_;
    my $res = $HTTP->get("$base/metrics");
    die "$base/metrics: $res->{status}\n" unless $res->{status} == 200;
    return $res->{content} =~ /^pgchat_parked_requests (\d+)$/m ? $1 : die "no gauge\n";
}

# Joins as $nick at $base (http://host:port[/prefix]), parks a /recv, sends
# and checks the /recv gets the message: the whole chat, through $base.
sub chat_ok {
    my ($base, $nick, $what) = @_;
    my ($st, $json, $raw) = POST("$base/join", {nick => $nick});
    is($st, 200, "$what: join") or return diag($raw);
    my $id = $json->{id};
    ($st, $json) = GET("$base/recv?since=0");
    my $head = $json->{messages}[-1]{timestamp} // 0;
    my $before = parked_at($base);
    my $w = Stack::Pending->new("$base/recv?since=$head&id=$id");
    wait_for(30, "the /recv at $base to park", sub { parked_at($base) > $before });
    ($st, undef, $raw) = POST("$base/send", {id => $id, text => "hello from $nick"});
    is($st, 200, "$what: send") or diag($raw);
    my ($wst, $wjson, $wraw) = $w->wait;
    ok($wst == 200 && (grep { $_->{type} eq 'msg' && $_->{text} eq "hello from $nick" }
                       @{$wjson->{messages} // []}),
       "$what: recv gets the message") or diag("$wst $wraw");
    return $id;
}

# nginx on a configuration of our own; returns its pid once it answers.
sub start_nginx {
    my ($prefix, $conf, $port, $log) = @_;
    my $out = qx{nginx -t -q -p $prefix -c $conf -e stderr 2>&1};
    ok($? == 0, "nginx -t accepts $conf") or diag($out);
    my $pid = start_group($log, $log, {}, 'nginx', '-p', $prefix, '-c', $conf,
                    '-e', 'stderr');
    wait_until(30, sub { port_open($port) }) or die "nginx did not start:\n" . slurp($log);
    return $pid;
}

sub stop_nginx { stop_group($_[0], 'QUIT') }

# A responder of our own (not through Stack): returns its pid once its
# socket is there.
sub start_responder {
    my ($log, $env) = @_;
    my $pid = start_group($log, $log, {RATE_LIMIT => 0, WEB_CONCURRENCY => 2, %$env},
                          Stack::as_user($BIN));
    if (my $sock = $env->{PGCHAT_SOCKET}) {
        wait_until(60, sub { -S $sock }) or die "no socket $sock:\n" . slurp($log);
    }
    return $pid;
}

# Stops a responder with SIGTERM; returns its exit status.
sub stop_responder {
    my ($pid) = @_;
    my @tree = descendants($pid);
    kill 'TERM', $pid;
    my $status = reap($pid, 30);
    wait_until(15, sub { !running(@tree) });
    forget_group($pid);
    return $status;
}

my $RUN_AS = Stack::run_user();

# An operator's nginx.conf for the drop-in, in $d, with fastcgi_params and
# mime.types beside it in $d/conf as in /etc/nginx: one server on $port
# that includes $d/conf's pgchat-upstream.conf and pgchat.conf, with
# $server (more directives of the operator's own) before them.
sub operator_nginx_conf {
    my ($d, $port, $server) = @_;
    copy("/etc/nginx/$_", "$d/conf/$_") or die "$_: $!" for qw(fastcgi_params mime.types);
    spew("$d/conf/nginx.conf", Stack::nginx_conf(prefix => $d, http => <<"HTTP"));
    include mime.types;
    default_type application/octet-stream;
    access_log $d/access.log;
    include $d/conf/pgchat-upstream.conf;
    server {
        listen 127.0.0.1:$port;
        $server
        set \$pgchat_public $TOP/public;
        include $d/conf/pgchat.conf;
    }
HTTP
    return "$d/conf/nginx.conf";
}

# --- 1. The Procfile: bin/web ---------------------------------------------

{
    my $line = qx{sed -n 's/^web: //p' $TOP/Procfile};
    chomp $line;
    is($line, 'bin/web', 'the Procfile runs bin/web');
    my $db = new_db('deploy', undef);    # empty: bin/web must migrate it
    my $url = Stack::db_url($db);
    my @web;
    for my $i (1, 2) {
        my $w = {port => Stack::free_port(), var => "$dir/web$i"};
        mkdir $w->{var};
        $w->{out} = "$w->{var}.out";
        $w->{err} = "$w->{var}.err";
        # Exactly what a Procfile runner does: its line through sh -c.
        $w->{sh} = start_group($w->{out}, $w->{err}, {
            PORT => $w->{port},
            DATABASE_URL => $url,
            PGCHAT_VAR => $w->{var},
            PGCHAT_BIN => $BIN,
            WEB_CONCURRENCY => 2,
            RATE_LIMIT => 0,
            PGCHAT_SOCKET => undef,
            PGCHAT_LISTEN => undef,
        }, 'sh', '-c', $line);
        push @web, $w;
    }
    for my $w (@web) {
        my $up = wait_until(180, sub { slurp($w->{out}) =~ /pgchat is up: (\S+)/ ? $1 : '' });
        ok($up, "bin/web on port $w->{port} says it is up")
            or die("bin/web did not come up:\n" . slurp($w->{out}) . slurp($w->{err}));
        is($up, "http://127.0.0.1:$w->{port}/", 'with its URL');
    }

    # Both migrated the empty database at once: the lock let one do it.
    my @files = map { m{/(\d+_[^/]+)\.sql$} } glob "$TOP/migrations/[0-9]*.sql";
    my @applied = split /\n/, Stack::psql($url, 'SELECT version FROM schema_migrations ORDER BY version');
    is_deeply(\@applied, \@files, 'the empty database got every migration');
    my $said = join '', map { slurp($_->{out}) } @web;
    my %count;
    $count{$_}++ for $said =~ /^applied migration (\S+)$/mg;
    is_deeply(\%count, {map { $_ => 1 } @files},
              'two bin/web started at once applied each migration once');

    my $base1 = "http://127.0.0.1:$web[0]{port}";
    my $base2 = "http://127.0.0.1:$web[1]{port}";
    my $id = chat_ok($base1, 'procfile', 'through bin/web');
    my ($st, $json) = GET("$base2/recv?since=0");
    ok((grep { ($_->{text} // '') eq 'hello from procfile' } @{$json->{messages}}),
       'the other bin/web on the same database has the message');
    my ($st1, $who1) = GET("$base1/who");
    my ($st2, $who2) = GET("$base2/who");
    is_deeply($who2->{nicks}, $who1->{nicks}, 'and the same /who');

    # The access log is bin/web's stdout. Session ids travel in query
    # strings (/recv?id=...), so they must not be logged.
    {
        my $conf = slurp("$web[0]{var}/nginx/nginx.conf");    # as rendered
        like($conf, qr/^\s*access_log\s+\S+\s+pgchat\s*;/m,
             'the rendered nginx.conf logs in the pgchat format');
        my $log = slurp($web[0]{out});
        like($log, qr{^127\.0\.0\.1 \[[-0-9T:+]+\] "GET /recv" 200 \d+ [\d.]+ [\d.]+$}m,
             'the access log has one line per request, in the pgchat format');
        unlike($log, qr/\Q$id\E/, 'and no session id');
        unlike($log, qr/hello from procfile/, 'and no message text');
    }

    # A responder that dies takes bin/web down, nginx with it.
    my ($web1) = children_named($web[0]{sh}, 'web');
    my ($resp1) = $web1 ? children_named($web1, substr((split m{/}, $BIN)[-1], 0, 15)) : ();
    ok($web1 && $resp1, "bin/web ($web1) and its responder (" . ($resp1 // '?') . ') found');
    my @tree = descendants($web[0]{sh});
    kill 'KILL', $resp1 if $resp1;
    my $status = reap($web[0]{sh}, 60);
    ok(defined $status && $status >> 8 != 0,
       'bin/web exits non-zero when its responder is killed (status '
       . (defined $status ? $status >> 8 : 'none, still running') . ')');
    ok(wait_until(30, sub { !running(@tree) }),
       'and its nginx and the workers are gone too')
        or diag("still running: @{[running(@tree)]}");
    ok(!port_open($web[0]{port}), 'nobody listens on its port');
    like(slurp($web[0]{err}), qr/a server died/, 'bin/web says why it stopped');

    # SIGTERM: both stop, exit 0.
    my ($web2) = children_named($web[1]{sh}, 'web');
    @tree = descendants($web[1]{sh});
    ok(@tree >= 5, 'the second bin/web runs nginx and the responder ('
       . scalar(@tree) . ' processes)');
    kill 'TERM', $web2;
    $status = reap($web[1]{sh}, 60);
    is(defined $status ? $status >> 8 : 'still running', 0, 'SIGTERM: bin/web exits 0');
    ok(wait_until(30, sub { !running(@tree) }), 'and leaves nothing running')
        or diag("still running: @{[running(@tree)]}");
    ok(wait_until(10, sub { !mentioning($web[1]{var}) }),
       'no process mentions its directory')
        or diag("still running: @{[mentioning($web[1]{var})]}");
    ok(!port_open($web[1]{port}), 'its port is closed');
    ok(!-e "$web[1]{var}/run/pgchat.sock", 'its socket is removed');
    forget_group($_->{sh}) for @web;

    clean_log_ok(slurp($_->{err}), "bin/web $_->{port}'s responder") for @web;
}

# --- 2. Drop-in: nginx/pgchat.conf in a server of our own ------------------

{
    my $d = "$dir/dropin";
    mkdir $d;
    Stack::give_dir($d);
    mkdir "$d/conf";
    my $db = new_db('deploy', 'template_pgchat');
    my $sock = "$d/pgchat.sock";
    my $resp = start_responder("$d/responder.log", {
        DATABASE_URL => Stack::db_url($db), PGCHAT_SOCKET => $sock,
        WEB_CONCURRENCY => 2,
    });

    # The operator's side: their nginx.conf and the three lines.
    my $snippet = slurp("$TOP/nginx/pgchat.conf");
    $snippet =~ s{/var/log/nginx/pgchat\.access\.log}{$d/pgchat-access.log}g;
    spew("$d/conf/pgchat.conf", $snippet);
    my $upstream = slurp("$TOP/nginx/pgchat-upstream.conf");
    ok($upstream =~ s{^(\s*server\s+)unix:/run/pgchat/pgchat\.sock;}{$1unix:$sock;}m,
       'pgchat-upstream.conf names the responder\'s socket');
    spew("$d/conf/pgchat-upstream.conf", $upstream);
    my $port = Stack::free_port();
    my $conf = operator_nginx_conf($d, $port, "root $d/www; location /other { return 200 other; }");
    my $nginx = start_nginx($d, $conf, $port, "$d/nginx.log");
    my $base = "http://127.0.0.1:$port";
    my $csp = qr/^default-src 'self'; script-src 'self'/;

    my ($st, $json, $raw, $res) = GET("$base/other");
    is("$st $raw", '200 other', 'the server\'s own location still answers');
    $res = HTTP::Tiny->new(max_redirect => 0, timeout => 30)->get("$base/chat");
    is("$res->{status} " . ($res->{headers}{location} // ''), '301 /chat/',
       '/chat redirects to /chat/');
    ($st, $json, $raw, $res) = GET("$base/chat/");
    is($st, 200, '/chat/ answers');
    like($raw, qr{<title>pgchat</title>}, 'with the client\'s page');
    like($res->{headers}{'content-type'}, qr{^text/html; charset=utf-8}, 'as UTF-8 HTML');
    like($res->{headers}{'content-security-policy'} // '', $csp, 'with the CSP header');
    ($st, undef, $raw, $res) = GET("$base/chat/app.js");
    ok($st == 200 && $raw =~ m{from './transport\.js'}, '/chat/app.js is the client\'s script');
    like($res->{headers}{'content-type'} // '', qr{^application/javascript},
         'as JavaScript (a module is refused as anything else)');
    ($st, undef, $raw, $res) = GET("$base/chat/transport.js");
    ok($st == 200 && $raw =~ /new EventSource/, 'and its modules load from the same prefix');
    ($st, undef, $raw, $res) = GET("$base/chat/who");
    is($st, 200, '/chat/who reaches the responder');
    like($res->{headers}{'content-security-policy'} // '', $csp,
         'and its answers carry the CSP header too');
    chat_ok("$base/chat", 'dropin', 'under /chat/');

    ($st, undef, $raw, $res) = GET("$base/chat/nothing-here");
    is("$st $raw", '404 {"error":"Not found"}', 'an unknown path under /chat/ is a JSON 404');
    ($st, undef, $raw) = decode($HTTP->request('POST', "$base/chat/style.css"));
    is("$st $raw", '405 {"error":"Method not allowed"}', 'a POST to a file is a JSON 405');
    ($st, undef, $raw) = decode($HTTP->request('POST', "$base/chat/send", {
        headers => {'Content-Type' => 'application/x-www-form-urlencoded'},
        content => 'text=' . ('x' x 70000)}));
    is("$st $raw", '413 {"error":"Request too large"}', 'a body over 64 KB is refused by nginx, in JSON');
    ($st, undef, $raw) = GET("$base/chat/_error/503");
    is($st, 404, 'the error pages are not reachable from outside');

    my $log = slurp("$d/pgchat-access.log");
    like($log, qr{^127\.0\.0\.1 \[[-0-9T:+]+\] "POST /chat/send" 200 \d+ [\d.]+ [\d.]+$}m,
         '/chat/ requests are logged in the pgchat format');
    unlike($log, qr/\bid=/, 'without query strings (session ids)');
    unlike(slurp("$d/access.log"), qr{/chat}, 'and not in the server\'s own log');

    # The responder away: nginx's own JSON answer, the rest unaffected.
    is(stop_responder($resp) >> 8, 0, 'the responder stops on SIGTERM with status 0');
    ($st, undef, $raw, $res) = GET("$base/chat/who");
    ok(($st == 502 || $st == 503) && $raw eq '{"error":"Chat server unavailable, try again"}',
       "without a responder /chat/who is a JSON error ($st)") or diag($raw);
    like($res->{headers}{'content-security-policy'} // '', $csp, 'with the CSP header');
    ($st, undef, $raw) = GET("$base/other");
    is("$st $raw", '200 other', 'and the server\'s own location still answers');
    stop_nginx($nginx);
    clean_log_ok(slurp("$d/responder.log"), 'drop-in responder');
}

# --- 2b. The drop-in behind a site's login ----------------------------------
# The recipe of pgchat.conf's comment, run as written: sed enables the
# "# auth: " lines, and the site's URL and cookie are written in.
{
    my $d = "$dir/dropin-auth";
    mkdir $d;
    Stack::give_dir($d);
    mkdir "$d/conf";
    mkdir "$d/auth_cache";
    Stack::give_dir("$d/auth_cache");
    my $app_port = Stack::free_port();
    spew("$d/users", "tok-alice alice lobby\n");
    my $app = start_group("$d/app.log", "$d/app.log", {},
                          Stack::as_user("$TOP/contrib/pgchat-auth-example", $app_port,
                                         "$d/users", 'session'));
    wait_until(10, sub { port_open($app_port) }) or die "no login service:\n" . slurp("$d/app.log");
    my $db = new_db('deploy', 'template_pgchat');
    my $sock = "$d/pgchat.sock";
    my $resp = start_responder("$d/responder.log", {
        DATABASE_URL => Stack::db_url($db), PGCHAT_SOCKET => $sock, PGCHAT_AUTH => 'request',
    });
    copy("$TOP/nginx/$_", "$d/conf/$_") or die "$_: $!" for qw(pgchat.conf pgchat-upstream.conf);
    my ($sed) = slurp("$TOP/nginx/pgchat.conf") =~ /^\s*#\s+(sed -i .*)$/m;
    ok($sed, 'pgchat.conf says how to enable its auth lines');
    system("cd $d/conf && $sed") == 0 or die "$sed failed";
    my $snippet = slurp("$d/conf/pgchat.conf");
    unlike($snippet, qr/^\s*# auth: /m, '  and that enables them all');
    $snippet =~ s{/var/log/nginx/pgchat\.access\.log}{$d/pgchat-access.log}g;
    ok($snippet =~ s{http://127\.0\.0\.1:3000/chat-auth}{http://127.0.0.1:$app_port/auth}, 'the site\'s URL is written in');
    # The example site's cookie is "session", the name the recipe has.
    spew("$d/conf/pgchat.conf", $snippet);
    my $upstream = slurp("$d/conf/pgchat-upstream.conf");
    $upstream =~ s{unix:/run/pgchat/pgchat\.sock;}{unix:$sock;};
    $upstream =~ s{/var/cache/nginx/pgchat-auth}{$d/auth_cache};
    spew("$d/conf/pgchat-upstream.conf", $upstream);
    my $port = Stack::free_port();
    my $conf = operator_nginx_conf($d, $port, '');
    my $nginx = start_nginx($d, $conf, $port, "$d/nginx.log");
    my $base = "http://127.0.0.1:$port/chat";
    my ($st, $json, $raw) = GET("$base/who", {'X-Pgchat-User' => 'alice'});
    is("$st $raw", '401 {"error":"Login required"}',
       'without the site\'s cookie: 401 JSON, whatever X-Pgchat-User says');
    ($st, $json, $raw) = GET("$base/join?nick=mallory", {Cookie => 'session=tok-alice'});
    is($st, 200, 'with it, a join') or diag($raw);
    is($json && $json->{nick}, 'alice', '  is the site\'s user, whatever nick it asks for');
    ($st, $json) = GET("$base/history?room=elsewhere", {Cookie => 'session=tok-alice'});
    is($st, 403, 'a room outside her list: 403');
    ($st) = GET("$base/", {});
    is($st, 200, 'the client\'s files need no login');
    stop_nginx($nginx);
    stop_responder($resp);
    stop_group($app);
    clean_log_ok(slurp("$d/responder.log"), 'drop-in responder behind a login');
}

# --- 3. Under FastCGI process managers ---------------------------------------

# A standard nginx (bin/nginx-conf) in front of $sock; returns (pid, base).
sub nginx_for {
    my ($name, $sock, $env) = @_;
    my $var = "$dir/$name-nginx";
    mkdir $var;
    my $port = Stack::free_port();
    local %ENV = (%ENV, RATE_LIMIT => 0, %{$env // {}});
    system("$TOP/bin/nginx-conf 127.0.0.1:$port $sock $var $var/access.log > $var/nginx.conf") == 0
        or die 'bin/nginx-conf failed';
    my $pid = start_nginx($var, "$var/nginx.conf", $port, "$var/nginx.log");
    return ($pid, "http://127.0.0.1:$port");
}

SKIP: {
    skip 'spawn-fcgi is not installed (apt-get install spawn-fcgi)', 9
        unless grep { -x "$_/spawn-fcgi" } split /:/, $ENV{PATH};
    my $db = new_db('deploy', 'template_pgchat');
    my $sock = "$dir/spawn.sock";
    my $log = "$dir/spawn.log";
    # spawn-fcgi binds the socket, puts it on fd 0 and execs the responder
    # (-n: in the foreground, as under a supervisor).
    my $pid = start_group($log, $log, {
        DATABASE_URL => Stack::db_url($db), WEB_CONCURRENCY => 2,
        RATE_LIMIT => 0, PGCHAT_SOCKET => undef,
    }, 'spawn-fcgi', '-s', $sock, '-M', '0660', '-n',
       ($ROOT ? ('-U', $RUN_AS, '-G', $RUN_AS, '-u', $RUN_AS, '-g', $RUN_AS) : ()),
       '--', $BIN);
    ok(wait_until(60, sub { slurp($log) =~ /listening on fd 0 with 2 workers/ }),
       'under spawn-fcgi the responder takes the socket on fd 0') or diag(slurp($log));
    my ($nginx, $base) = nginx_for('spawn', $sock);
    chat_ok($base, 'spawned', 'under spawn-fcgi');
    my $status = stop_responder($pid);
    is(defined $status ? $status >> 8 : 'still running', 0,
       'SIGTERM stops it with status 0');
    stop_nginx($nginx);
    clean_log_ok(slurp($log), 'spawn-fcgi responder');
}

SKIP: {
    skip 'systemd-socket-activate is not installed', 6
        unless -x '/usr/bin/systemd-socket-activate';
    # What contrib/pgchat.socket with StandardInput=socket does: systemd
    # binds, starts the responder at the first connection and hands it the
    # listening socket on fd 0 (--inetd; without it, fd 3 and LISTEN_FDS).
    my $db = new_db('deploy', 'template_pgchat');
    my $sock = "$dir/activate.sock";
    my $log = "$dir/activate.log";
    my $pid = start_group($log, $log, {DATABASE_URL => Stack::db_url($db)},
        'systemd-socket-activate', '--inetd', '-l', $sock,
        '-E', 'DATABASE_URL', '-E', 'WEB_CONCURRENCY=2', '-E', 'RATE_LIMIT=0',
        '-E', "ASAN_OPTIONS=" . ($ENV{ASAN_OPTIONS} // ''),
        Stack::as_user($BIN));
    wait_until(30, sub { -S $sock }) or diag(slurp($log));
    # As contrib/pgchat.socket's SocketUser= would have it.
    if ($ROOT) {
        my (undef, undef, $uid, $gid) = getpwnam($RUN_AS);
        chown $uid, $gid, $sock;
    }
    my ($nginx, $base) = nginx_for('activate', $sock);
    chat_ok($base, 'activated', 'socket-activated');
    like(slurp($log), qr/listening on fd 0 with 2 workers/,
         'the responder was started on the first request, with the socket on fd 0');
    my $status = stop_responder($pid);
    is(defined $status ? $status >> 8 : 'still running', 0, 'SIGTERM stops it with status 0');
    stop_nginx($nginx);
    clean_log_ok(slurp($log), 'socket-activated responder');
}

SKIP: {
    skip 'systemd-analyze is not installed', 2 unless -x '/usr/bin/systemd-analyze';
    # The units as installed, with this checkout for /opt/pgchat.
    my $u = "$dir/units";
    mkdir $u;
    mkdir "$u/pgchat.service.d";
    for my $f (qw(pgchat.service pgchat.socket pgchat.service.d/socket.conf)) {
        my $text = slurp("$TOP/contrib/$f");
        $text =~ s{/opt/pgchat/fcgi/pgchat\b}{$BIN}g;
        $text =~ s{/opt/pgchat}{$TOP}g;
        spew("$u/$f", $text);
    }
    my $out = qx{systemd-analyze verify --man=no $u/pgchat.socket $u/pgchat.service 2>&1};
    ok($? == 0 && $out !~ /\Q$u\E/, 'systemd-analyze verify accepts the units and the drop-in')
        or diag($out);
    my @bad = grep { !/^\s*(#.*)?$/ && !/^[A-Z_][A-Z0-9_]*=\S/ }
              split /\n/, slurp("$TOP/contrib/pgchat.env.example");
    ok(!@bad, 'pgchat.env.example has only NAME=value lines and comments') or diag("@bad");
}

# --- 4. Operating it -----------------------------------------------------------

# /healthz and /stats.
{
    my $s = Stack->new(workers => 1);
    my ($st, $json, $raw) = $s->get('/healthz');
    is($st, 200, '/healthz answers 200 when the database is there');
    like($raw, qr/^\{"status":"ok","rss":\d+\}$/, 'with {"status":"ok","rss":N}');

    my $a = $s->join_nick('ops1');
    my $b = $s->join_nick('ops2', 'ops');
    $s->post('/send', {id => $a, text => "ops $_"}) for 1 .. 3;
    ($st, $json) = $s->get('/recv?since=0');
    my $head = $json->{messages}[-1]{timestamp};
    my $w = $s->get_async("/recv?since=$head");
    my $stats = wait_until(20, sub {
        my (undef, $j) = $s->get('/stats');
        return $j && $j->{parked} == 1 ? $j : undef;
    });
    ok($stats, '/stats counts the parked request');
    $stats //= (($s->get('/stats'))[1]);
    is_deeply([sort keys %$stats],
              [sort qw(uptime pid parked messages sessions rooms rss connections requests)],
              '/stats has uptime, pid, parked, messages, sessions, rooms, rss, connections, requests');
    my @pids = $s->worker_pids;
    is($stats->{pid}, $pids[0], 'pid is the worker\'s');
    is($stats->{messages}, $s->sql('SELECT count(*) FROM messages'), 'messages counts the stored ones');
    is($stats->{sessions}, 2, 'sessions: 2');
    is($stats->{rooms}, 2, 'rooms: 2');
    ok($stats->{uptime} >= 0 && $stats->{uptime} < 600 && $stats->{rss} > 0,
       "uptime ($stats->{uptime} s) and rss ($stats->{rss}) are plausible");
    $s->post('/send', {id => $a, text => 'wake'});
    $w->wait;

    # nginx keeps its FastCGI connections: many requests, few connections.
    my (undef, $before) = $s->get('/stats');
    $s->get('/who') for 1 .. 100;
    my (undef, $after) = $s->get('/stats');
    my $requests = $after->{requests} - $before->{requests};
    my $connections = $after->{connections} - $before->{connections};
    is($requests, 101, '/stats counts the FastCGI requests (100 /who and itself)');
    ok($connections <= 4, "nginx kept its FastCGI connections: $requests requests "
       . "over $connections new ones");

    # The psql views.
    my @history = split /\n/, $s->sql(q{SELECT room || '|' || nick || '|' || type || '|'
        || coalesce(text, '') FROM chat_history ORDER BY ts});
    is_deeply(\@history, ['lobby|ops1|join|', 'ops|ops2|join|',
                          (map { "lobby|ops1|msg|ops $_" } 1 .. 3), 'lobby|ops1|msg|wake'],
              'chat_history lists every message in order');
    like($s->sql(q{SELECT time FROM chat_history ORDER BY ts DESC LIMIT 1}),
         qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/, 'with a readable time');
    is($s->sql(q{SELECT string_agg(room || '/' || nick, ' ' ORDER BY nick)
                 FROM chat_online WHERE idle_seconds BETWEEN 0 AND 60}),
       'lobby/ops1 ops/ops2', 'chat_online lists who is in which room');
    $s->finish;
}

# /healthz without a database.
{
    my $d = "$dir/nodb";
    mkdir $d;
    Stack::give_dir($d);
    my $sock = "$d/pgchat.sock";
    my $resp = start_responder("$d/responder.log", {
        DATABASE_URL => "postgresql:///pgchat?host=$d/no-such-dir&user=" . Stack::pg_user(),
        PGCHAT_SOCKET => $sock, WEB_CONCURRENCY => 1,
    });
    my ($nginx, $base) = nginx_for('nodb', $sock);
    my ($st, $json, $raw) = GET("$base/healthz");
    is($st, 503, '/healthz answers 503 when the database cannot be reached');
    ok($json && $json->{error}, 'with a JSON error') or diag($raw);
    ($st) = GET("$base/stats");
    is($st, 503, 'so does /stats');
    stop_responder($resp);
    stop_nginx($nginx);
    clean_log_ok(slurp("$d/responder.log"), 'responder without a database');
}

# MESSAGE_RETENTION: the first sweep after a start deletes what is older.
{
    my $s = Stack->new(workers => 2, env => {MESSAGE_RETENTION => 1,
                                            PGCHAT_SWEEP_INTERVAL => 0.2});
    my $id = $s->join_nick('keeper');
    $s->post('/send', {id => $id, text => $_}) for 'old news', 'fresh news';
    $s->sql(q{UPDATE messages SET ts = ts - 2 * 86400 * 1000 WHERE text = 'old news'});
    $s->restart_responder;
    ok(wait_until(60, sub { $s->sql(q{SELECT count(*) FROM messages WHERE text = 'old news'}) == 0 }),
       'MESSAGE_RETENTION=1: a message 2 days old is deleted');
    my ($st, $json) = $s->get('/recv?since=0');
    is_deeply([map { $_->{text} // $_->{type} } @{$json->{messages}}], ['join', 'fresh news'],
              'and only that one');
    like($s->log('responder'), qr/deleted 1 message older than 1 days/, 'the log says so');
    $s->finish;
}

# SIGHUP: the workers are replaced, parked clients answered, nothing lost.
{
    my $s = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 20});
    my $id = $s->join_nick('hup');
    my @before = map { "before $_" } 1 .. 5;
    $s->post('/send', {id => $id, text => $_}) for @before;
    my (undef, $json) = $s->get('/recv?since=0');
    my $head = $json->{messages}[-1]{timestamp};
    my @old = sort { $a <=> $b } $s->worker_pids;
    is(scalar @old, 2, 'two workers before SIGHUP');

    # Parked in a room where nobody speaks: only the restart answers them.
    my @parked = map { $s->get_async('/recv?since=0&room=quiet') } 1 .. 6;
    my %parked;
    wait_until(20, sub {
        my (undef, $j) = $s->get('/stats');
        $parked{$j->{pid}} = $j->{parked} if $j;
        my $n = 0;
        $n += $_ for values %parked;
        return $n >= 6;
    });

    # A client sending all along, one send after the other, until both
    # workers are new (and 5 more).
    my $sent = "$dir/hup-sent";
    my $sender = fork // die;
    if ($sender == 0) {
        # A connection per send: after a refusal nginx may close a kept
        # connection whose body it did not read, and HTTP::Tiny answers the
        # next POST on it 599 (a browser sends it again on a new one).
        my $http = HTTP::Tiny->new(timeout => 60, keep_alive => 0);
        open(my $fh, '>', $sent) or die;
        $fh->autoflush(1);
        my $more = 5;
        for my $i (1 .. 5000) {
            my $res = $http->post_form($s->url('/send'), {id => $id, text => "during $i"});
            print $fh "$i $res->{status} $res->{content}\n";
            last if -e "$sent.stop" && --$more == 0;
        }
        POSIX::_exit(0);
    }
    wait_until(30, sub { -s $sent });
    my $t0 = time;
    kill 'HUP', $s->responder_pid;

    my $pinged = 0;
    for my $w (@parked) {
        my ($wst, $wjson) = $w->wait;
        $pinged++ if $wst == 200 && $wjson->{ping} && !@{$wjson->{messages}};
    }
    my $took = time - $t0;
    is($pinged, 6, 'every parked client got a ping');
    ok($took < 15, sprintf('at once, not after the recv timeout (%.1f s)', $took));
    my $new = wait_until(60, sub {
        my @now = sort { $a <=> $b } $s->worker_pids;
        my %was = map { $_ => 1 } @old;
        return (@now == 2 && !grep { $was{$_} } @now) ? \@now : undef;
    }) // [];
    is(scalar @$new, 2, "SIGHUP replaced both workers (@old -> @$new)");
    spew("$sent.stop", '');
    waitpid $sender, 0;

    my ($st) = $s->post('/send', {id => $id, text => 'after'});
    is($st, 200, 'a send after the restart works');
    my @results = map { [split / /, $_, 3] } split /\n/, slurp($sent);
    ok(@results >= 6, 'the sender sent ' . scalar(@results) . ' messages meanwhile');
    my @acked = map { "during $_->[0]" } grep { $_->[1] == 200 } @results;
    my @refused = grep { $_->[1] != 200 } @results;
    note(scalar(@refused) . ' of ' . scalar(@results) . ' sends during the restart were refused: '
         . join(', ', map { "$_->[1] $_->[2]" } @refused[0 .. ($#refused > 2 ? 2 : $#refused)]))
        if @refused;
    # An old worker takes new requests until it exits: answered 503
    # (restarting), or dropped unread, which nginx answers (502).
    ok(!(grep { $_->[1] !~ /^50[23]$/ || $_->[2] !~ /^\{"error":/ } @refused),
       'sends refused during the restart got a JSON 502/503 (the client sends again)');
    my @stored = split /\n/, $s->sql(q{SELECT text FROM messages WHERE type = 'msg' ORDER BY ts});
    is_deeply(\@stored, [@before, @acked, 'after'],
              'every acknowledged message is stored, in order, and nothing else');
    ($st, $json) = $s->get('/recv?since=0');
    is_deeply([map { $_->{text} } grep { $_->{type} eq 'msg' } @{$json->{messages}}], \@stored,
              'and /recv returns them all');
    unlike($s->log('responder'), qr/killed by signal|exited with [1-9]/,
           'no worker died along the way');
    $s->finish;
}

done_testing;
