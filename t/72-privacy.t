#!/usr/bin/perl
# 72-privacy.t -- the embedded cluster is private and nothing runs as root:
#   - another local user (nobody) cannot connect with the printed URL;
#   - nobody is trusted (pg_hba.conf), the socket's directory is 0700;
#   - the chat's role is no superuser, cannot run programs, owns its
#     database; the superuser needs its password;
#   - started as root, the responder (parent and workers), nginx's workers
#     and PostgreSQL run as the unprivileged user; only nginx's master is
#     root; bin/web does the same.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(wait_until slurp start_group stop_group new_db children_of);
use File::Temp qw(tempdir);
use Test::More;

my $ROOT = $> == 0;
my $pg = Stack::pg_dir();
my $url = Stack::db_url('template_pgchat');

# The uids (real, effective, saved, filesystem) of a process.
sub uids {
    my ($pid) = @_;
    my ($line) = slurp("/proc/$pid/status") =~ /^Uid:\s+(.*)$/m;
    return split ' ', $line // '';
}
sub comm { my $c = slurp("/proc/$_[0]/comm"); chomp $c; $c }
sub as_root { grep { $_ == 0 } uids($_[0]) }

# --- the cluster -----------------------------------------------------------

my $mode = (stat "$pg/run")[2] & 07777;
is(sprintf('%04o', $mode), '0700', "the socket's directory is 0700");
is(sprintf('%04o', (stat $pg)[2] & 07777), '0700', "the cluster's directory is 0700");
is(sprintf('%04o', (stat "$pg/superuser.pgpass")[2] & 07777), '0600',
   "the superuser's password file is 0600");
is(scalar getpwuid((stat "$pg/run")[4]), Stack::run_user(),
   'and they belong to ' . Stack::run_user());

SKIP: {
    skip 'runuser needs root', 2 unless $ROOT;
    my $out = qx{runuser -u nobody -- psql -X -tA -d '$url' -c 'SELECT current_user' 2>&1};
    isnt($? >> 8, 0, "nobody's psql with the chat's URL is refused");
    like($out, qr/Permission denied|failed/, 'at the socket') or diag($out);
}

SKIP: {
    skip 'runuser needs root', 1 unless $ROOT;
    my $other = "postgresql:///template_pgchat?host=$pg/run&user=" . Stack::run_user();
    # postgres (Debian's user) is another local user too.
    my $out = qx{runuser -u postgres -- psql -X -tA -d '$other' -c 'SELECT 1' 2>&1};
    isnt($? >> 8, 0, "the postgres OS user's psql is refused as well") or diag($out);
}

{
    local $ENV{PGPASSFILE} = '/nonexistent';
    my $out = qx{psql -X -tA -d 'postgresql:///postgres?host=$pg/run&user=postgres' -c 'SELECT 1' 2>&1};
    isnt($? >> 8, 0, 'the superuser without its password is refused');
    like($out, qr/password/i, 'it is asked for a password') or diag($out);
}

is(Stack::psql(Stack::admin_url(), q{SELECT count(*) FROM pg_hba_file_rules
                                     WHERE auth_method = 'trust' OR type <> 'local'}),
   0, 'pg_hba.conf trusts nobody and allows only the unix socket');
is(Stack::psql(Stack::admin_url(), q{SHOW listen_addresses}), '', 'no TCP listener');

{
    my $s = Stack->new(workers => 1);
    is($s->sql(q{SELECT rolsuper::text || rolcreaterole::text || rolcreatedb::text
                 FROM pg_roles WHERE rolname = current_user}),
       'falsefalsefalse', 'the chat connects as a role that is no superuser, creates no roles or databases');
    is($s->sql(q{SELECT current_user}), Stack::run_user(), 'named ' . Stack::run_user());
    is($s->sql(q{SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()}),
       Stack::run_user(), 'which owns its database');
    is($s->sql(q{SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',') FROM pg_class
                 WHERE relnamespace = 'public'::regnamespace}),
       Stack::run_user(), 'and every table of its schema');
    my $out = qx{psql -X -tA -d '${\ $s->database_url}' -c "COPY (SELECT 1) TO PROGRAM 'id'" 2>&1};
    isnt($? >> 8, 0, 'COPY ... TO PROGRAM is refused to it');
    like($out, qr/permission denied|must be superuser|pg_execute_server_program/i, 'for want of the privilege')
        or diag($out);

    # --- nothing runs as root ---------------------------------------------
    my @resp = ($s->responder_pid, $s->worker_pids);
    is(scalar @resp, 2, 'the responder runs, with its worker');
    ok(!(grep { as_root($_) } @resp), 'neither the responder nor its worker runs as root (uids '
       . join(' / ', map { join ',', uids($_) } @resp) . ')');
    my @nginx = children_of($s->{nginx});
    ok(@nginx >= 1, 'nginx runs workers (' . scalar(@nginx) . ')');
    ok(!(grep { as_root($_) } @nginx), "no nginx worker runs as root");
    my ($postmaster) = slurp("$pg/data/postmaster.pid") =~ /^(\d+)/;
    my @pg = ($postmaster, children_of($postmaster));
    ok(@pg >= 3, 'PostgreSQL runs (' . scalar(@pg) . ' processes)');
    ok(!(grep { as_root($_) } @pg), 'no PostgreSQL process runs as root');
    my $conf = slurp($s->dir . '/nginx/nginx.conf');
    unlike($conf, qr/^\s*user\s+root\b/m, 'the rendered nginx.conf has no "user root"');
    SKIP: {
        skip 'not root: nginx runs as ourselves, with no user line', 1 unless $ROOT;
        like($conf, qr/^user \Q${\ Stack::run_user()}\E;$/m, 'but user ' . Stack::run_user());
    }
    $s->finish;
}

# bin/web, as an operator starts it.
{
    my $dir = tempdir('privacy-XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp', CLEANUP => 1);
    chmod 0755, $dir;
    my $port = Stack::free_port();
    my $db = new_db('privacy', 'template_pgchat');
    my $pid = start_group("$dir/out", "$dir/err", {
        PORT => $port, PGCHAT_LISTEN => "127.0.0.1:$port", PGCHAT_VAR => "$dir/var",
        DATABASE_URL => Stack::db_url($db), PGCHAT_BIN => Stack::binary(),
        WEB_CONCURRENCY => 2, RATE_LIMIT => 0, PGCHAT_SOCKET => undef,
    }, "$Stack::TOP/bin/web");
    ok(wait_until(120, sub { slurp("$dir/out") =~ /pgchat is up/ }), 'bin/web comes up')
        or diag(slurp("$dir/err"));
    my (@all, @todo) = ();
    @todo = ($pid);
    while (defined(my $p = shift @todo)) {
        my @k = children_of($p);
        push @all, @k;
        push @todo, @k;
    }
    my @resp = grep { comm($_) eq substr((split m{/}, Stack::binary())[-1], 0, 15) } @all;
    my @nginx = grep { comm($_) eq 'nginx' } @all;
    is(scalar @resp, 3, 'its responder runs, with 2 workers');
    ok(!(grep { as_root($_) } @resp), 'none of them as root');
    my $ppid = sub { (split ' ', (slurp("/proc/$_[0]/stat") =~ s/^.*\) //sr))[1] };
    my @root_nginx = grep { as_root($_) } @nginx;
    ok(@nginx >= 2, 'its nginx runs, master and workers (' . scalar(@nginx) . ')');
    ok(!(grep { comm($ppid->($_)) eq 'nginx' } @root_nginx),
       'only the master of nginx may run as root, no worker ('
       . scalar(@root_nginx) . ' of ' . scalar(@nginx) . ' as root)');
    my $run = "$dir/var/run";
    is(sprintf('%04o', (stat $run)[2] & 07777), '0700', "the sockets' directory is 0700");
    is(scalar getpwuid((stat $run)[4]), Stack::run_user(), 'and belongs to ' . Stack::run_user());
    is(stop_group($pid) >> 8, 0, 'bin/web stops on SIGTERM');
}

done_testing;
