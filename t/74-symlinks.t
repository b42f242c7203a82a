#!/usr/bin/perl
# 74-symlinks.t -- root never writes through a symlink under var/: `make run`
# (bin/run, with bin/pg and bin/web under it) started as root on a var/
# where a symlink sits at every path root touched or touches:
#   - in var/pg, the unprivileged user's own directory (where that user, or
#     code running as it, can plant anything): initdb.log, which root once
#     wrote (issue 20). Root now makes var/pg and hands it over, and does
#     everything inside as that user (bin/as-user);
#   - in var/nginx, root's (where nobody else can, but a leftover link must
#     not be followed either): nginx.conf and nginx.conf.new (rendered by
#     bin/web), nginx.pid (written by nginx's master), and nginx's temporary
#     directories client_body, fastcgi, proxy, uwsgi, scgi (made and handed
#     to the user by nginx's master, with chown and chmod).
# Each link points at a file (or directory) of root's in a 0700 directory of
# root's; after the chat is up and stopped again, every one of them is
# exactly as it was: contents, mode, owner, times. Twice: the first start
# makes the cluster, the second finds it (var/nginx's links planted again).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(wait_until slurp start_group stop_group as_user);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use Test::More;

plan skip_all => 'the start path as root needs root' unless $> == 0;

my $TOP = $Stack::TOP;
my $user = Stack::run_user();
my (undef, undef, $uid, $gid) = getpwnam($user) or die "no user $user";

my $dir = tempdir('symlinks-XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp',
                  CLEANUP => 1);
chmod 0755, $dir;
my $secret = "$dir/secret";    # root's alone
mkdir $secret, 0700 or die "$secret: $!";
chmod 0700, $secret;
my $var = "$dir/var";
mkdir $var, 0755 or die;
mkdir "$var/pg", 0755 or die;
chown $uid, $gid, "$var/pg" or die;    # as bin/pg hands it over
mkdir "$var/nginx", 0755 or die;

# Where each link is planted, by whom, and whether it points at a file or a
# directory.
my @nginx = (
    ['nginx/nginx.conf', 'root', 'file'],
    ['nginx/nginx.conf.new', 'root', 'file'],
    ['nginx/nginx.pid', 'root', 'file'],
    (map { ["nginx/$_", 'root', 'dir'] } qw(client_body fastcgi proxy uwsgi scgi)),
);
my @first = (['pg/initdb.log', 'user', 'file'], @nginx);

# A target's state: what a write, a chown or a chmod through a link changes.
sub state_of {
    my ($path) = @_;
    my @st = lstat $path or return 'missing';
    my $body = -d _ ? join(',', sort glob("$path/*")) : slurp($path);
    return sprintf('mode %04o uid %d gid %d size %d mtime %d ctime %d [%s]',
                   $st[2] & 07777, @st[4, 5, 7, 9, 10], $body);
}

# Plants @links (whatever is at each path is removed first); returns
# {path => [target, its state]}.
sub plant {
    my ($round, @links) = @_;
    my %before;
    for my $l (@links) {
        my ($where, $who, $kind) = @$l;
        (my $name = "$round-$where") =~ tr|/|-|;
        my $target = "$secret/$name";
        if ($kind eq 'dir') {
            mkdir $target, 0700 or die "$target: $!";
        } else {
            open(my $fh, '>', $target) or die "$target: $!";
            print $fh "root's own $name\n";
            close $fh;
            chmod 0600, $target;
        }
        system('rm', '-rf', "$var/$where") == 0 or die;
        if ($who eq 'user') {
            system(as_user('ln', '-s', $target, "$var/$where")) == 0
                or die "$user cannot plant $var/$where";
        } else {
            symlink $target, "$var/$where" or die "$var/$where: $!";
        }
        ok(-l "$var/$where", "$round: a symlink sits at var/$where (planted by $who)");
        $before{$where} = [$target, state_of($target)];
    }
    return \%before;
}

# bin/run as root, as `make run` starts it: up, answering, stopped.
sub start_ok {
    my ($round) = @_;
    my $port = Stack::free_port();
    my $pid = start_group("$dir/out-$round", "$dir/err-$round", {
        PORT => $port, PGCHAT_LISTEN => "127.0.0.1:$port", PGCHAT_VAR => $var,
        DATABASE_URL => undef, PGCHAT_BIN => "$TOP/fcgi/pgchat-asan",
        WEB_CONCURRENCY => 1, RATE_LIMIT => 0, PGCHAT_SOCKET => undef,
        PGCHAT_WRITE_SOCKET => undef,
    }, 'bash', "$TOP/bin/run");
    my $up = wait_until(180, sub {
        return 1 if slurp("$dir/out-$round") =~ /pgchat is up/;
        return waitpid($pid, POSIX::WNOHANG()) == $pid ? 'exited' : 0;
    });
    is($up, 1, "$round: bin/run as root comes up on that var/")
        or diag(slurp("$dir/out-$round") . slurp("$dir/err-$round"));
    return unless $up eq '1';
    my $res = HTTP::Tiny->new(timeout => 10)->get("http://127.0.0.1:$port/who");
    is($res->{status}, 200, "$round: the chat answers");
    is(stop_group($pid) >> 8, 0, "$round: bin/run stops on SIGTERM");
    like(slurp("$dir/out-$round"), qr/PostgreSQL stopped/, "$round: and stops its cluster");
}

sub untouched_ok {
    my ($round, $before) = @_;
    for my $where (sort keys %$before) {
        my ($target, $was) = @{$before->{$where}};
        is(state_of($target), $was, "$round: root's file behind var/$where is untouched");
    }
}

my $before = plant('first', @first);
start_ok('first');
untouched_ok('first', $before);
ok(-f "$var/pg/data/PG_VERSION", 'the cluster was made in var/pg all the same');
is((lstat "$var/pg/initdb.log")[4] // -1, $uid, "initdb.log is $user\'s own file");

$before = plant('again', @nginx);
start_ok('again');
untouched_ok('again', $before);

done_testing;
