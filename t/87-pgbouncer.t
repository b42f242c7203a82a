#!/usr/bin/perl
# 87-pgbouncer.t -- DATABASE_URL through Debian's PgBouncer (1.18, which
# knows no prepared statements) in transaction mode, LISTEN_DATABASE_URL
# straight to PostgreSQL: the writer's statements are all unnamed, and only
# the direct LISTEN connection prepares one. Then the protocol and delivery
# tests run whole through a PgBouncer of their own.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;

my $s = Stack->new(workers => 2, pgbouncer => 1,
                   env => {PGCHAT_RECV_TIMEOUT => 2});

my %config = map { $_->[0] => $_->[1] } $s->pgbouncer_show('CONFIG');
is($config{pool_mode}, 'transaction', 'PgBouncer pools by transaction');
like($s->responder_url, qr/127\.0\.0\.1:\d+/,
     "the responder's DATABASE_URL is PgBouncer's port");

my $alice = $s->join_nick('alice');
my $bob = $s->join_nick('bob');
my $w = $s->get_async('/recv?since=' . (time * 1000 + 60_000));
my ($st, $json) = $s->get('/who');
is_deeply($json->{nicks}, [qw(alice bob)], 'who through PgBouncer');
my $since = 0;
for my $i (1 .. 50) {
    ($st) = $s->post('/send', {id => $i % 2 ? $alice : $bob, text => "m$i"});
    is($st, 200, "send $i through PgBouncer") if $i == 1 || $i == 50;
}
my @got;
while (@got < 50) {
    ($st, $json) = $s->get("/recv?since=$since");
    last unless $st == 200 && @{$json->{messages}};
    for my $m (@{$json->{messages}}) {
        push @got, $m->{text} if $m->{type} eq 'msg';
        $since = $m->{timestamp};
    }
}
is_deeply(\@got, [map { "m$_" } 1 .. 50], 'every message, once, in order');
($st, $json) = $s->get('/stats');
is($st, 200, '/stats through PgBouncer');
($st) = $s->get("/part?id=$alice");
is($st, 200, 'part through PgBouncer');

# Who is connected where: the writers through PgBouncer, never LISTEN.
my @clients = $s->pgbouncer_show('CLIENTS');
my %apps;
for my $c (@clients) { $apps{$_}++ for grep { /^pgchat-/ } @$c }
ok($apps{'pgchat-writer'}, 'the writers connect through PgBouncer');
ok(!$apps{'pgchat-listen'}, 'the LISTEN connections do not');
is($s->sql(q{SELECT count(*) FROM pg_stat_activity
             WHERE application_name = 'pgchat-listen'}), 2,
   'each worker LISTENs on a direct connection');
my ($stats) = grep { $_->[0] eq $s->{db} } $s->pgbouncer_show('STATS');
ok($stats && $stats->[1] > 50, 'PgBouncer carried the transactions')
    or diag explain $stats;
unlike($s->log('responder'), qr/prepared statement|cannot /,
       'the responder logged no database error');
$s->finish;

# The protocol table and the delivery test, each wholly through PgBouncer.
for my $t (qw(10-protocol.t 21-delivery.t)) {
    local $ENV{PGCHAT_TEST_PGBOUNCER} = 1;
    my $out = `$^X $FindBin::Bin/$t 2>&1`;
    ok($? == 0, "$t passes with DATABASE_URL through PgBouncer")
        or diag $out;
    my ($n) = $out =~ /^1\.\.(\d+)/m;
    ok($n && $n > 10, "$t ran its $n checks") or diag $out;
}

done_testing;
