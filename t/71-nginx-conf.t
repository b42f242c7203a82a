#!/usr/bin/perl
# 71-nginx-conf.t -- bin/nginx-conf renders only values it has checked: a
# ';', a '}', a newline or a space in any setting or argument it copies
# into nginx.conf stops it with status 2 and a message naming the setting,
# so no value can add a directive. Good values render a configuration
# nginx -t accepts.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(slurp);
use File::Temp qw(tempdir);
use Test::More;

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
like($out, qr/rate=300r\/m;/, 'the join rate');
like($out, qr/limit_conn pgchat_conn 7;/, 'the connection cap');
like($out, qr/10\.1\.0\.0\/16 1; 192\.0\.2\.7 1; 2001:db8::\/32 1;/, 'the /stats addresses');
like($out, qr/listen \[::1\]:9000;/, 'an IPv6 listen address');

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

done_testing;
