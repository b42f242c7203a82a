#!/usr/bin/perl
# 60-browser.t -- the client in a real headless Chromium (Debian's), driven
# by playwright-core from t/browser/chat.mjs, against the real stack. The
# script prints its own TAP, which passes through. A second stack runs
# behind a login (contrib/pgchat-auth-example) for the moderation test.
#
# The script stops and starts the responder through PGCHAT_CTL, a small
# program that leaves a command in the stack's directory and waits until
# this process, which owns the responder, has carried it out; `fill ROOM
# N` stores N messages in a room at once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack qw(spew start_group stop_group wait_for port_open);
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);

# A low send rate, so that 40 messages typed at once meet the per-session
# limit's 429 many times over (t/browser/chat.mjs: the outbox waits them out).
my $s = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 5, RATE_LIMIT => 1,
                                         PGCHAT_SEND_RATE => 2, PGCHAT_SEND_BURST => 5});
# A second stack behind a site's login (PGCHAT_AUTH=request), with
# contrib/pgchat-auth-example as the site, for the moderation test: mona
# moderates, alice does not.
my $auth_dir = tempdir('browser-auth-XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp', CLEANUP => 1);
chmod 0755, $auth_dir;
Stack::give_dir($auth_dir);
spew("$auth_dir/users", "tok-mod mona role=moderator\ntok-alice alice lobby\n");
my $app_port = Stack::free_port();
my $app = start_group("$auth_dir/app.log", "$auth_dir/app.log", {},
                      Stack::as_user("$Stack::TOP/contrib/pgchat-auth-example", $app_port,
                                     "$auth_dir/users", 'appsession'));
wait_for(10, 'the login service to listen', sub { port_open($app_port) });
my $auth = Stack->new(env => {PGCHAT_AUTH => 'request', PGCHAT_AUTH_COOKIE => 'appsession',
                              PGCHAT_AUTH_URL => "http://127.0.0.1:$app_port/auth"},
                      up => '/healthz');

my $dir = $s->dir;
my $ctl = "$dir/ctl";
open(my $fh, '>', $ctl) or die;
print $fh <<"SH";
#!/bin/sh
rm -f '$dir/ctl.done'
echo "\$*" > '$dir/ctl.cmd.tmp' && mv '$dir/ctl.cmd.tmp' '$dir/ctl.cmd'
for i in \$(seq 1 600); do
    [ -e '$dir/ctl.done' ] && exit 0
    sleep 0.05
done
echo "ctl: '\$1' was not carried out" >&2
exit 1
SH
close $fh;
chmod 0755, $ctl;

my $out = "$Stack::TOP/t/out";
mkdir $out;
my $pid = fork // die;
if ($pid == 0) {
    # The screenshots go to t/out; `make docs` sets PGCHAT_DOCS to
    # refresh the README's, so that a test run leaves the tree as it was.
    %ENV = (%ENV, PGCHAT_URL => $s->url('/'), PGCHAT_CTL => $ctl,
            PGCHAT_OUT => $out, PGCHAT_AUTH_BASE => $auth->url('/'));
    exec 'node', "$Stack::TOP/t/browser/chat.mjs" or die "node: $!";
}
while (waitpid($pid, WNOHANG) == 0) {
    if (open(my $cmd_fh, '<', "$dir/ctl.cmd")) {
        chomp(my $cmd = <$cmd_fh> // '');
        close $cmd_fh;
        unlink "$dir/ctl.cmd";
        if ($cmd eq 'responder-stop') {
            $s->stop_responder;
        } elsif ($cmd eq 'responder-start') {
            $s->start_responder;
            $s->wait_up;
        } elsif ($cmd =~ /^fill ([A-Za-z0-9_-]{1,64}) (\d{1,6})$/) {
            # N messages "history 1" .. "history N" in room, in one go.
            $s->sql(qq{SELECT chat_post('$1', array_fill('filler'::text, ARRAY[$2]),
                array_fill('msg'::text, ARRAY[$2]),
                ARRAY(SELECT 'history ' || i FROM generate_series(1, $2) i))});
        }
        open(my $done_fh, '>', "$dir/ctl.done") or die "ctl.done: $!";
        close $done_fh;
    }
    sleep 0.05;
}
my $status = $?;
# The node script's TAP is complete; a sanitizer report fails the file.
my @reports = ($s->finish(no_test => 1), $auth->finish(no_test => 1));
stop_group($app);
print STDERR "# sanitizer report: $_\n" for @reports;
exit($status || @reports ? 1 : 0);
