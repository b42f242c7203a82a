#!/usr/bin/perl
# 71-nginx-conf.t -- nginx's configuration: one source for what nginx.conf
# and the drop-in (nginx/pgchat.conf, nginx/pgchat-upstream.conf) share,
# and the per-address limits it sets.
#
# - The shared pieces (nginx/shared/*.conf: error pages, limits, headers,
#   body bounds) are copied by bin/nginx-inline; its --check fails when a
#   copy differs from its source, and none of their directives is written
#   outside a copy.
# - bin/nginx-conf renders only values it has checked: a ';', a '}', a
#   newline or a space in any setting or argument it copies into
#   nginx.conf stops it with status 2 and a message naming the setting,
#   so no value can add a directive. Good values render a configuration
#   nginx -t accepts; so do the drop-in's files.
# - Every chat endpoint has a per-address limit_req: its burst passes,
#   what follows is refused with 429, JSON and Retry-After: 1; the
#   client's files and /healthz are never limited.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(slurp spew);
use File::Copy qw(copy);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use Test::More;
use Time::HiRes qw(time);

my $TOP = $Stack::TOP;
my $dir = tempdir('conf-XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp', CLEANUP => 1);
chmod 0755, $dir;

# Runs bin/nginx-conf; returns (exit status, stdout, stderr).
sub render {
    my ($env, @args) = @_;
    @args = ('127.0.0.1:8080', "$dir/pgchat.sock", "$dir/var", "$dir/access.log") unless @args;
    my $pid = fork // die;
    if ($pid == 0) {
        open(STDOUT, '>', "$dir/out") or die;
        open(STDERR, '>', "$dir/err") or die;
        delete $ENV{$_} for grep { /^PGCHAT_|^RATE_LIMIT$|^PORT$/ } keys %ENV;
        $ENV{$_} = $env->{$_} for keys %$env;
        exec "$TOP/bin/nginx-conf", @args or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    return ($? >> 8, slurp("$dir/out"), slurp("$dir/err"));
}

my ($st, $out, $err) = render({});
is($st, 0, 'the defaults render') or diag($err);
{
    open(my $fh, '>', "$dir/nginx.conf") or die;
    print $fh $out;
    close $fh;
    mkdir "$dir/var";
    my $t = qx{nginx -t -q -p $dir/var -c $dir/nginx.conf -e stderr 2>&1};
    is($?, 0, 'and nginx -t accepts them') or diag($t);
}

($st, $out, $err) = render({PGCHAT_JOIN_RATE => '300r/m', PGCHAT_JOIN_BURST => 0,
                            PGCHAT_ADDR_SEND_RATE => '1r/s', PGCHAT_ADDR_SEND_BURST => 1,
                            PGCHAT_ADDR_CONNS => 7, PGCHAT_STATS_ALLOW => '10.1.0.0/16 192.0.2.7,2001:db8::/32'},
                           '[::1]:9000', "$dir/a.sock,$dir/b.sock", "$dir/var", 'off');
is($st, 0, 'other good values render') or diag($err);
like($out, qr/zone=pgchat_join:10m rate=300r\/m;/, 'the join rate');
like($out, qr/zone=pgchat_join burst=0 nodelay;/, 'the join burst');
like($out, qr/zone=pgchat_send:10m rate=1r\/s;/, 'the send rate');
like($out, qr/zone=pgchat_send burst=1 nodelay;/, 'the send burst');
like($out, qr/zone=pgchat_search:10m rate=2r\/s;/, 'the other limits as they are');
like($out, qr/limit_conn pgchat_conn 7;/, 'the connection cap');
like($out, qr/10\.1\.0\.0\/16 1; 192\.0\.2\.7 1; 2001:db8::\/32 1;/, 'the /stats addresses');
like($out, qr/listen \[::1\]:9000;/, 'an IPv6 listen address');
like($out, qr/upstream pgchat \{\s*hash \$arg_room consistent; server unix:\Q$dir\E\/a\.sock; server unix:\Q$dir\E\/b\.sock;/,
     'several sockets: a room\'s requests on one responder by default');

# PGCHAT_READ_BALANCE: room (the default) hashes the readers' upstream on
# the room, least_conn spreads it; the writes stay least_conn either way.
for my $balance (['room', qr/hash \$arg_room consistent;/], ['least_conn', qr/least_conn;/]) {
    my ($name, $line) = @$balance;
    ($st, $out, $err) = render({PGCHAT_READ_BALANCE => $name,
                                PGCHAT_WRITE_SOCKET => "$dir/aw.sock,$dir/bw.sock"},
                               '127.0.0.1:8080', "$dir/a.sock,$dir/b.sock", "$dir/var", 'off');
    is($st, 0, "PGCHAT_READ_BALANCE=$name renders") or diag($err);
    like($out, qr/upstream pgchat \{\s*$line server unix:\Q$dir\E\/a\.sock;/, "  the readers' upstream");
    like($out, qr/upstream pgchat_write \{\s*least_conn; server unix:\Q$dir\E\/aw\.sock;/,
         "  the writers' least_conn");
    spew("$dir/$name.conf", $out);
    my $t = qx{nginx -t -q -p $dir/var -c $dir/$name.conf -e stderr 2>&1};
    is($?, 0, '  and nginx -t accepts it') or diag($t);
}
($st, $out, $err) = render({PGCHAT_READ_BALANCE => 'room'});
like($out, qr/upstream pgchat \{\s*server unix:\Q$dir\E\/pgchat\.sock;/, 'one socket: no balancing line');

# PGCHAT_AUTH=request: the auth location and its cache, which nginx takes;
# without the cache no proxy_cache line; without PGCHAT_AUTH no auth line.
my %auth = (PGCHAT_AUTH => 'request', PGCHAT_AUTH_URL => 'http://127.0.0.1:9000/site/auth',
            PGCHAT_AUTH_COOKIE => 'sid');
($st, $out, $err) = render({%auth, PGCHAT_AUTH_CACHE => 7});
is($st, 0, 'PGCHAT_AUTH=request renders') or diag($err);
like($out, qr{proxy_pass http://127\.0\.0\.1:9000/site/auth;}, 'the auth URL');
like($out, qr/proxy_cache_key \$cookie_sid;/, 'the cache keyed on the cookie');
like($out, qr/proxy_cache_valid 200 204 401 403 7s;/, 'for PGCHAT_AUTH_CACHE seconds');
is(scalar(() = $out =~ /auth_request \/_pgchat_auth;/g), 3, 'the three chat locations ask');
{
    spew("$dir/auth.conf", $out);
    my $t = qx{nginx -t -q -p $dir/var -c $dir/auth.conf -e stderr 2>&1};
    is($?, 0, '  and nginx -t accepts it') or diag($t);
}
($st, $out, $err) = render({%auth, PGCHAT_AUTH_CACHE => 0});
is($st, 0, 'PGCHAT_AUTH_CACHE=0 renders') or diag($err);
unlike($out, qr/proxy_cache/, '  with no cache');
like($out, qr/auth_request \/_pgchat_auth;/, '  still asking');
($st, $out, $err) = render({});
unlike($out, qr/^\s*(?:auth_request|fastcgi_param PGCHAT_|location = \/_pgchat_auth|proxy_(?!temp_path))/m,
       'without PGCHAT_AUTH nothing of it is rendered');

# --- one source: nginx/shared/ and its copies -------------------------------

# The copies of each target, by piece, and what is written outside them.
sub copies {
    my ($text) = @_;
    my (%pieces, $outside, $in);
    for my $line (split /^/m, $text) {
        if (!$in && $line =~ m{^\s*# >>> (nginx/shared/\S+)}) { $in = $1; $pieces{$in}++; next }
        if ($in && $line =~ m{^\s*# <<< \Q$in\E\s*$}) { undef $in; next }
        $outside .= $line unless $in;
    }
    return (\%pieces, $outside);
}
my %want = (
    'nginx.conf' => {'nginx/shared/http.conf' => 1, 'nginx/shared/request.conf' => 1,
                     'nginx/shared/errors.conf' => 1},
    'nginx/pgchat.conf' => {'nginx/shared/request.conf' => 2, 'nginx/shared/errors.conf' => 1},
    'nginx/pgchat-upstream.conf' => {'nginx/shared/http.conf' => 1},
);
for my $file (sort keys %want) {
    my ($pieces, $outside) = copies(slurp("$TOP/$file"));
    is_deeply($pieces, $want{$file}, "$file holds its copies of nginx/shared/");
    my @own = grep { /^\s*(limit_req|limit_conn|error_page|add_header|client_max_body|client_body_timeout|log_format)\b/ }
        split /\n/, $outside;
    is("@own", '', "  and writes no limit, error page, header, body bound or log format of its own");
}
{
    my $out = qx{"$TOP/bin/nginx-inline" --check 2>&1};
    is($?, 0, 'bin/nginx-inline --check: every copy is its source') or diag($out);
}
# Drift is caught: a copy of the files with one piece changed.
{
    my $copy = "$dir/drift";
    make_path("$copy/bin", "$copy/nginx/shared");
    copy("$TOP/bin/nginx-inline", "$copy/bin/nginx-inline") or die;
    chmod 0755, "$copy/bin/nginx-inline";
    copy("$TOP/$_", "$copy/$_") or die "$_: $!"
        for 'nginx.conf', 'nginx/pgchat.conf', 'nginx/pgchat-upstream.conf',
            map { "nginx/shared/" . (split m{/})[-1] } glob("$TOP/nginx/shared/*.conf");
    my $req = slurp("$copy/nginx/shared/request.conf");
    $req =~ s/burst=200/burst=300/ or die 'no history burst in request.conf';
    spew("$copy/nginx/shared/request.conf", $req);
    my $out = qx{"$copy/bin/nginx-inline" --check 2>&1};
    is($? >> 8, 1, 'a piece changed and not copied: --check fails');
    like($out, qr{nginx\.conf .*\n.*nginx/pgchat\.conf}s, '  naming both files that use it') or diag($out);
    unlike(slurp("$copy/nginx/pgchat.conf"), qr/burst=300/, '  and changes nothing');
    $out = qx{"$copy/bin/nginx-inline" 2>&1};
    is($?, 0, 'bin/nginx-inline rewrites the copies') or diag($out);
    my $n = () = slurp("$copy/nginx/pgchat.conf") =~ /pgchat_history burst=300/g;
    is($n, 2, '  both copies in the drop-in');
    like(slurp("$copy/nginx.conf"), qr/pgchat_history burst=300/, '  and the one in nginx.conf');
    $out = qx{"$copy/bin/nginx-inline" --check 2>&1};
    is($?, 0, '  after which --check passes') or diag($out);
}

# The drop-in's files, in a server of their own, are a configuration nginx
# -t accepts (t/90-deploy.t runs them).
{
    my $d = "$dir/dropin";
    make_path("$d/conf", "$d/www");
    copy("/etc/nginx/$_", "$d/conf/$_") or die "$_: $!" for qw(fastcgi_params mime.types);
    (my $snippet = slurp("$TOP/nginx/pgchat.conf")) =~ s{/var/log/nginx/pgchat\.}{$d/pgchat-}g;
    spew("$d/conf/pgchat.conf", $snippet);
    copy("$TOP/nginx/pgchat-upstream.conf", "$d/conf/pgchat-upstream.conf") or die;
    spew("$d/conf/nginx.conf", Stack::nginx_conf(prefix => $d, connections => 64, http => <<"HTTP"));
    include mime.types;
    access_log off;
    include $d/conf/pgchat-upstream.conf;
    server {
        listen 127.0.0.1:1;
        set \$pgchat_public $TOP/public;
        include $d/conf/pgchat.conf;
    }
HTTP
    my $t = qx{nginx -t -q -p $d -c $d/conf/nginx.conf -e stderr 2>&1};
    is($?, 0, 'the drop-in\'s files: nginx -t accepts them') or diag($t);
}

($st, $out, $err) = render({RATE_LIMIT => 0});
is($st, 0, 'RATE_LIMIT=0 renders');
unlike($out, qr/^\s*limit_(?:req|conn)(?:_zone)?\s/m, '  with no limit_req or limit_conn left');
{
    spew("$dir/nginx0.conf", $out);
    my $t = qx{nginx -t -q -p $dir/var -c $dir/nginx0.conf -e stderr 2>&1};
    is($?, 0, '  and nginx -t accepts it') or diag($t);
}

my $NL = "\n";
my @bad = (
    # [what, env, args]
    ['PORT with a directive', 'LISTEN', {}, '8080; include /etc/shadow'],
    ['PGCHAT_LISTEN with a space', 'LISTEN', {}, '127.0.0.1:80 ssl'],
    ['PGCHAT_LISTEN with a newline', 'LISTEN', {}, "8080${NL}user root"],
    ['a port beyond 65535', 'LISTEN', {}, '127.0.0.1:70000'],
    ['port 0', 'LISTEN', {}, '0'],
    ['PGCHAT_JOIN_RATE with a directive', 'PGCHAT_JOIN_RATE', {PGCHAT_JOIN_RATE => '5r/s; user root'}],
    ['PGCHAT_JOIN_RATE not a rate', 'PGCHAT_JOIN_RATE', {PGCHAT_JOIN_RATE => '5'}],
    ['PGCHAT_JOIN_BURST with a directive', 'PGCHAT_JOIN_BURST', {PGCHAT_JOIN_BURST => '20 nodelay; }'}],
    ['PGCHAT_ADDR_SEND_RATE with a newline', 'PGCHAT_ADDR_SEND_RATE', {PGCHAT_ADDR_SEND_RATE => "50r/s${NL}"}],
    ['PGCHAT_ADDR_SEND_BURST negative', 'PGCHAT_ADDR_SEND_BURST', {PGCHAT_ADDR_SEND_BURST => '-1'}],
    ['PGCHAT_ADDR_CONNS with a directive', 'PGCHAT_ADDR_CONNS', {PGCHAT_ADDR_CONNS => '100; deny all'}],
    ['PGCHAT_ADDR_CONNS zero', 'PGCHAT_ADDR_CONNS', {PGCHAT_ADDR_CONNS => '0'}],
    ['PGCHAT_STATS_ALLOW with a directive', 'PGCHAT_STATS_ALLOW', {PGCHAT_STATS_ALLOW => '0.0.0.0/0 1; }'}],
    ['PGCHAT_STATS_ALLOW a word', 'PGCHAT_STATS_ALLOW', {PGCHAT_STATS_ALLOW => 'all'}],
    ['PGCHAT_WRITE_SOCKET with a directive', 'PGCHAT_WRITE_SOCKET', {PGCHAT_WRITE_SOCKET => "$dir/w.sock; }"}],
    ['PGCHAT_PUBLIC with a space', 'PGCHAT_PUBLIC', {PGCHAT_PUBLIC => '/tmp/a b'}],
    ['PGCHAT_PUBLIC relative', 'PGCHAT_PUBLIC', {PGCHAT_PUBLIC => 'public'}],
    ['PGCHAT_USER root', 'PGCHAT_USER', {PGCHAT_USER => 'root'}],
    ['PGCHAT_USER with a directive', 'PGCHAT_USER', {PGCHAT_USER => 'pgchat; daemon on'}],
    ['PGCHAT_AUTH misspelt', 'PGCHAT_AUTH', {PGCHAT_AUTH => 'requests'}],
    ['PGCHAT_READ_BALANCE misspelt', 'PGCHAT_READ_BALANCE', {PGCHAT_READ_BALANCE => 'rooms'}],
    ['PGCHAT_READ_BALANCE with a directive', 'PGCHAT_READ_BALANCE', {PGCHAT_READ_BALANCE => 'room; user root'}],
    ['PGCHAT_AUTH_URL unset', 'PGCHAT_AUTH_URL', {PGCHAT_AUTH => 'request', PGCHAT_AUTH_COOKIE => 'sid'}],
    ['PGCHAT_AUTH_URL with a directive', 'PGCHAT_AUTH_URL', {PGCHAT_AUTH => 'request', PGCHAT_AUTH_COOKIE => 'sid',
                                                              PGCHAT_AUTH_URL => 'http://127.0.0.1/a; include /etc/shadow'}],
    ['PGCHAT_AUTH_URL with a variable', 'PGCHAT_AUTH_URL', {PGCHAT_AUTH => 'request', PGCHAT_AUTH_COOKIE => 'sid',
                                                             PGCHAT_AUTH_URL => 'http://127.0.0.1/$http_x'}],
    ['PGCHAT_AUTH_URL not http', 'PGCHAT_AUTH_URL', {PGCHAT_AUTH => 'request', PGCHAT_AUTH_COOKIE => 'sid',
                                                      PGCHAT_AUTH_URL => 'file:///etc/passwd'}],
    ['PGCHAT_AUTH_COOKIE unset', 'PGCHAT_AUTH_COOKIE', {PGCHAT_AUTH => 'request', PGCHAT_AUTH_URL => 'http://127.0.0.1/a'}],
    ['PGCHAT_AUTH_COOKIE with a directive', 'PGCHAT_AUTH_COOKIE', {PGCHAT_AUTH => 'request', PGCHAT_AUTH_URL => 'http://127.0.0.1/a',
                                                                    PGCHAT_AUTH_COOKIE => 'sid; proxy_cache off'}],
    ['PGCHAT_AUTH_COOKIE with a dash', 'PGCHAT_AUTH_COOKIE', {PGCHAT_AUTH => 'request', PGCHAT_AUTH_URL => 'http://127.0.0.1/a',
                                                               PGCHAT_AUTH_COOKIE => 'my-sid'}],
    ['PGCHAT_AUTH_CACHE with a directive', 'PGCHAT_AUTH_CACHE', {PGCHAT_AUTH => 'request', PGCHAT_AUTH_URL => 'http://127.0.0.1/a',
                                                                  PGCHAT_AUTH_COOKIE => 'sid', PGCHAT_AUTH_CACHE => '5s; user root'}],
    ['the socket with a directive', 'SOCKET', {}, '127.0.0.1:8080', "$dir/s.sock; }", "$dir/var"],
    ['the var directory with a newline', 'VARDIR', {}, '127.0.0.1:8080', "$dir/s.sock", "$dir/var${NL}x"],
    ['the access log with a format of its own', 'ACCESS_LOG', {}, '127.0.0.1:8080', "$dir/s.sock",
     "$dir/var", "$dir/log combined"],
);
for my $row (@bad) {
    my ($what, $name, $env, @args) = @$row;
    @args = ($args[0], "$dir/pgchat.sock", "$dir/var") if @args == 1;
    my ($bst, $bout, $berr) = render($env, @args);
    is($bst, 2, "$what: refused with status 2");
    like($berr, qr/^bin\/nginx-conf: \Q$name\E\b.* is not /, "  with a message naming $name")
        or diag($berr);
    is($bout, '', '  and nothing rendered');
}

# --- the per-address limits, endpoint by endpoint --------------------------

# Each endpoint asked as fast as one client can, with a request the
# responder answers at once (a 400 counts as much as a 200): its burst
# passes, and a 429 comes before burst + rate x elapsed (+2: the first
# request is not excess, and a token may be partly refilled). The endpoint
# sharing its zone is refused right after. [endpoint and query, burst, rate a second, zone partner]
my @limits = (
    ['/who', 20, 5, '/limits'],
    ['/join', 20, 5, '/part'],
    ['/send', 100, 50, undef],
    ['/recv', 100, 20, '/events'],
    ['/history?limit=1', 200, 10, undef],
    ['/search?q=nothing', 10, 2, undef],
);
my $s = Stack->new(workers => 1, env => {RATE_LIMIT => 1, PGCHAT_ADDR_READS => 100});
my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 1);
my $csp = qr/^default-src 'self'; script-src 'self'/;
for my $row (@limits) {
    my ($path, $burst, $rate, $partner) = @$row;
    my ($name) = $path =~ m{^/(\w+)};
    my ($passed, $res, $t0) = (0, undef, time);
    while ($passed < $burst + 500) {
        $res = $http->get($s->url($path));
        last if $res->{status} == 429;
        $passed++;
    }
    my $most = $burst + int($rate * (time - $t0)) + 2;
    ok($passed >= $burst && $passed <= $most,
       "/$name: $passed requests pass (burst $burst, at most $most), then 429");
    is($res->{content}, '{"error":"Too many requests, slow down"}', '  in JSON');
    is($res->{headers}{'retry-after'}, 1, '  with Retry-After: 1');
    like($res->{headers}{'content-type'} // '', qr{^application/json}, '  as application/json');
    like($res->{headers}{'content-security-policy'} // '', $csp, '  and the CSP header');
    next unless $partner;
    is($http->get($s->url($partner))->{status}, 429, "  $partner shares its limit: 429 too");
}
{
    my %st;
    $st{$http->get($s->url($_))->{status}}++ for map { ('/app.js', '/', '/healthz') } 1 .. 100;
    is_deeply(\%st, {200 => 300}, 'the client\'s files and /healthz are never limited');
}
{
    my $res = $http->request('POST', $s->url('/style.css'));
    is("$res->{status} $res->{content}", '405 {"error":"Method not allowed"}',
       'nginx\'s other errors are JSON too (a POST to a file: 405)');
    ok(!exists $res->{headers}{'retry-after'}, '  without Retry-After');
    like($res->{headers}{'content-security-policy'} // '', $csp, '  with the CSP header');
}
$s->finish;

done_testing;
