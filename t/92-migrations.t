#!/usr/bin/perl
# 92-migrations.t -- bin/migrate and migrations/, as an operator meets them:
#   - from an empty database every migration applies, in order, each
#     recorded in schema_migrations; a second run is a no-op;
#   - a database at any earlier version is brought to the same schema as
#     one migrated from empty (pg_dump --schema-only compared);
#   - two runners at once apply each migration once;
#   - a migration that fails half-way is rolled back whole, is not
#     recorded, and nothing after it runs; fixed, it applies;
#   - the schema an operator reads with psql has the tables and views the
#     README names.
# bin/migrate reads the migrations next to it (../migrations), so the
# partial and broken sets are scratch copies: bin/migrate beside a
# migrations/ of our choosing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Basename qw(basename);
use File::Copy qw(copy);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use POSIX ();
use Stack qw(new_db as_user run_user);
use Test::More;

my $TOP = $Stack::TOP;
my @files = sort glob("$TOP/migrations/[0-9]*.sql");
my @versions = map { basename($_, '.sql') } @files;
cmp_ok(scalar @files, '>=', 7, 'migrations/ holds the numbered migrations');

# A scratch checkout of bin/migrate and the given migration files, readable
# by run_user().
my $scratch_root = tempdir('migrations.XXXXXX', DIR => $ENV{PGCHAT_TEST_TMP} // '/tmp',
                           CLEANUP => 1);
chmod 0755, $scratch_root;
my $n_scratch = 0;
sub scratch {
    my (%extra) = @_;    # name => SQL, added to the files in @{$extra{files}}
    my $dir = "$scratch_root/" . $n_scratch++;
    make_path("$dir/bin", "$dir/migrations");
    copy("$TOP/bin/migrate", "$dir/bin/migrate") or die "copy: $!";
    chmod 0755, "$dir/bin/migrate";
    for my $f (@{ delete $extra{files} // [] }) {
        copy($f, "$dir/migrations/" . basename($f)) or die "copy $f: $!";
    }
    for my $name (keys %extra) {
        Stack::spew("$dir/migrations/$name", $extra{$name});
    }
    system('chmod', '-R', 'a+rX', $dir) == 0 or die "chmod $dir";
    return $dir;
}

# Runs $dir/bin/migrate as run_user() on $url; returns (exit status, output).
sub migrate {
    my ($url, $dir) = @_;
    $dir //= $TOP;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open(STDERR, '>&', \*STDOUT);
        $ENV{DATABASE_URL} = $url;
        exec(as_user('sh', "$dir/bin/migrate")) or die "exec: $!";
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

sub applied_in { [ $_[0] =~ /^applied migration (\S+)$/mg ] }
sub recorded {
    my ($url) = @_;
    [ split /\n/, Stack::psql($url, 'SELECT version FROM schema_migrations ORDER BY version') ];
}
sub schema {
    my ($url) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        exec(as_user('pg_dump', '--schema-only', '--no-owner', '-d', $url))
            or die "exec: $!";
    }
    local $/;
    my $out = <$fh> // '';
    close $fh or die "pg_dump failed on $url\n";
    # pg_dump's \restrict lines carry a random key of each run.
    $out =~ s/^\\(?:un)?restrict .*\n//mg;
    return $out;
}
sub has_relation {
    my ($url, $name) = @_;
    Stack::psql($url, "SELECT to_regclass('public.$name') IS NOT NULL") eq 't';
}

# --- from empty, then again ----------------------------------------------

my $full = Stack::db_url(new_db('migrate_full', undef));
my ($st, $out) = migrate($full);
is($st, 0, 'bin/migrate on an empty database succeeds') or diag($out);
is_deeply(applied_in($out), \@versions, 'it applies every migration, in order');
is_deeply(recorded($full), \@versions, 'each is recorded in schema_migrations');
is(Stack::psql($full, 'SELECT count(*) FROM schema_migrations WHERE applied_at IS NULL'),
   0, 'each with its time');
my $schema = schema($full);
like($schema, qr/CREATE FUNCTION public\.chat_send/, 'the schema has the functions');
my $times = Stack::psql($full, 'SELECT string_agg(applied_at::text, \',\' ORDER BY version) FROM schema_migrations');

($st, $out) = migrate($full);
is($st, 0, 'a second run succeeds') or diag($out);
is_deeply(applied_in($out), [], 'and applies nothing');
is(Stack::psql($full, 'SELECT string_agg(applied_at::text, \',\' ORDER BY version) FROM schema_migrations'),
   $times, 'the records are untouched');
is(schema($full), $schema, 'and so is the schema');

# --- from every earlier version ----------------------------------------

for my $k (1 .. $#files) {
    my $url = Stack::db_url(new_db('migrate_from', undef));
    my ($st1, $out1) = migrate($url, scratch(files => [ @files[0 .. $k - 1] ]));
    is($st1, 0, "a database at $versions[$k - 1]") or diag($out1);
    my ($st2, $out2) = migrate($url);
    is($st2, 0, "... is migrated from there") or diag($out2);
    is_deeply(applied_in($out2), [ @versions[$k .. $#versions] ],
              '... applying only what it lacked');
    is(schema($url), $schema, '... to the schema of one migrated from empty');
}

# --- two runners at once -------------------------------------------------

{
    my $url = Stack::db_url(new_db('migrate_twice', undef));
    my @kids;
    for (1 .. 2) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my ($s) = migrate($url);
            POSIX::_exit($s);    # not exit: Stack's END would drop the databases
        }
        push @kids, $pid;
    }
    my @status = map { waitpid($_, 0); $? >> 8 } @kids;
    is_deeply(\@status, [0, 0], 'two runners started at once both succeed');
    is_deeply(recorded($url), \@versions, 'each migration is recorded once');
    is(schema($url), $schema, 'and the schema is the same');
}

# --- a migration that fails half-way -------------------------------------

{
    # Between 0002 and 0003: it sorts after 0002_*, before 0003_*.
    my ($second) = grep { basename($_) =~ /^0002_/ } @files;
    my $broken = <<'SQL';
CREATE TABLE half_done (x int);
INSERT INTO half_done VALUES (1);
ALTER TABLE rooms ADD COLUMN half_done int;
SELECT 1 / 0;
CREATE TABLE never_reached (x int);
SQL
    my $dir = scratch(files => \@files, '0002_zz_broken.sql' => $broken);
    my $url = Stack::db_url(new_db('migrate_broken', undef));
    my ($st1, $out1) = migrate($url, $dir);
    isnt($st1, 0, 'a run that meets a failing statement fails');
    like($out1, qr/division by zero/, 'and says why');
    is_deeply(applied_in($out1), [ map { basename($_, '.sql') } grep { $_ le $second } @files ],
              'the migrations before it are applied');
    is_deeply(recorded($url), [ map { basename($_, '.sql') } grep { $_ le $second } @files ],
              '... and recorded; the broken one is not');
    ok(!has_relation($url, 'half_done'), 'what it created before the failure is gone');
    is(Stack::psql($url, q{SELECT count(*) FROM information_schema.columns
                           WHERE table_name = 'rooms' AND column_name = 'half_done'}),
       0, 'what it altered is as it was');
    ok(!has_relation($url, 'never_reached'), 'nothing after the failure ran');
    ok(!has_relation($url, 'expired'), 'nor any migration after it');

    $broken =~ s{^SELECT 1 / 0;\n}{}m;
    Stack::spew("$dir/migrations/0002_zz_broken.sql", $broken);
    my ($st2, $out2) = migrate($url, $dir);
    is($st2, 0, 'fixed, the run succeeds') or diag($out2);
    is_deeply(applied_in($out2)->[0], '0002_zz_broken', 'it applies the fixed one first');
    ok(has_relation($url, 'half_done') && has_relation($url, 'never_reached'),
       'the whole of it');
    is_deeply(recorded($url), [ sort(@versions, '0002_zz_broken') ], 'and then the rest');

    # At the end, on a database that is up to date.
    my ($st3) = migrate($full, scratch(files => \@files, '9999_broken.sql' => "CREATE TABLE late (x int);\nSELECT 1 / 0;\n"));
    isnt($st3, 0, 'a failing last migration fails the run');
    is_deeply(recorded($full), \@versions, 'and is not recorded');
    is(schema($full), $schema, 'the schema is untouched');
}

# --- what an operator reads ------------------------------------------------

# The README's tables and views (Operations, Looking inside with psql,
# Exactly once across retries), each with the columns it names.
my %documented = (
    rooms            => [qw(room last_ts last_seq)],
    messages         => [qw(room seq ts nick type text mid)],
    sessions         => [qw(token_hash room nick joined_at last_seen addr)],
    message_mids     => [qw(room nick mid ts sent_at)],
    maintenance_runs => [qw(task runner started finished done)],
    expired          => [qw(room ts)],
    schema_migrations => [qw(version applied_at)],
    chat_history     => [qw(room time nick type text ts)],
    chat_online      => [qw(room nick idle_seconds joined_at)],
    chat_bans        => [qw(room login banned_by banned_at banned_until)],
    moderators       => [qw(login room)],
);
for my $rel (sort keys %documented) {
    my @have = split /\n/, Stack::psql($full, qq{
        SELECT column_name FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = '$rel'});
    my %have = map { $_ => 1 } @have;
    my @missing = grep { !$have{$_} } @{ $documented{$rel} };
    is("@missing", '', "$rel has the columns the README names");
}
is(Stack::psql($full, q{SELECT string_agg(table_name, ' ' ORDER BY table_name)
                        FROM information_schema.views WHERE table_schema = 'public'}),
   'chat_bans chat_history chat_online', 'the views are chat_bans, chat_history and chat_online');
# psql's \dt+ and \d+ show a table's comment (migrations/0010).
my @bare = split /\n/, Stack::psql($full, q{
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v')
      AND obj_description(c.oid, 'pg_class') IS NULL
    ORDER BY 1});
is("@bare", '', 'every table and view has a comment');

done_testing();
