# History/Run.pm -- one seeded run of the history checker: a stack of two
# responders of two workers behind one nginx, PGCHAT_DB_TIMEOUT=2 (with a
# PgBouncer of its own for the writer when asked); writers and followers
# (History::Driver) for $seconds while History::Nemesis injects faults
# during all but the last $calm seconds (the staleness bound: a fault
# begun before it may last into it, and the reads after its bound are held
# to the steady one); then
# the sends under way finish, the followers catch up with the table, fresh
# readers read every room at once from several connections (the final
# reads, until one round starts past every fault's bound), and
# History::Checker reads it all.
#
#   my $r = History::Run::run(seed => 42, seconds => 20);
#   $r->{violations}, $r->{summary}, $r->{stats}
package History::Run;

use strict;
use warnings;
use History::Checker;
use History::Driver;
use History::Http;
use History::Nemesis;
use JSON::PP;
use Stack;
use Time::HiRes qw(time);

our $DB_TIMEOUT = 2;
our $RECV_TIMEOUT = 5;

# The messages table, every room, as rows {room, seq, ts, nick, type,
# text, mid} (text as characters).
sub table {
    my ($stack) = @_;
    my $out = $stack->sql(q{SELECT room, seq, ts, nick, type,
        coalesce(encode(convert_to(text, 'UTF8'), 'base64'), '-'), coalesce(mid, '')
        FROM messages ORDER BY room, ts});
    my @rows;
    require MIME::Base64;
    for (split /\n/, $out) {
        my %r;
        @r{qw(room seq ts nick type text mid)} = split /\|/, $_, -1;
        if ($r{text} eq '-') { $r{text} = undef }
        else { $r{text} = MIME::Base64::decode_base64($r{text}); utf8::decode($r{text}) }
        $r{mid} = undef if $r{mid} eq '';
        push @rows, \%r;
    }
    return \@rows;
}

sub heads {
    my ($stack) = @_;
    return {map { split /\|/ } split /\n/, $stack->sql('SELECT room, last_ts FROM rooms')};
}

# Options: seed, seconds (of operations), calm (the seconds at the end
# without new faults; default 2 x PGCHAT_DB_TIMEOUT + 1), kinds (of faults),
# gap ([lo, hi] seconds between faults; History::Nemesis's default),
# responders, workers, pgbouncer, net (a History::Net: the responders
# reach the database through it, and the nemesis delays and cuts it).
# Returns {seed, violations, stats, summary, history}.
sub run {
    my (%opt) = @_;
    my $seed = $opt{seed};
    my $bound = 2 * $DB_TIMEOUT + 1;
    my $calm = $opt{calm} // $bound;
    my $s = Stack->new(responders => $opt{responders} // 2, workers => $opt{workers} // 2,
                       pgbouncer => $opt{pgbouncer} ? 1 : 0,
                       $opt{net} ? (db_route => [$opt{net}->host, $opt{net}->port]) : (),
                       env => {PGCHAT_DB_TIMEOUT => $DB_TIMEOUT,
                               PGCHAT_RECV_TIMEOUT => $RECV_TIMEOUT,
                               PGCHAT_SESSION_TIMEOUT => 15,
                               PGCHAT_SWEEP_INTERVAL => 1});
    my $loop = History::Http->new(port => $s->port);
    my $t_start = time;
    my $driver = History::Driver->new(
        loop => $loop, seed => $seed, duration => $opt{seconds},
        rooms => {lobby => 3, side => 2, quiet => 1},
        followers_at_start => [[lobby => 'recv'], [lobby => 'events'],
                               [side => 'recv'], [side => 'events']],
        late => 3, recv_timeout => $RECV_TIMEOUT, db_timeout => $DB_TIMEOUT);
    my $nemesis = History::Nemesis->new(stack => $s, loop => $loop, seed => $seed,
                                        db_timeout => $DB_TIMEOUT, net => $opt{net},
                                        $opt{gap} ? (gap => $opt{gap}) : (),
                                        $opt{kinds} ? (kinds => $opt{kinds}) : ());
    $driver->start;
    $nemesis->start;
    $loop->after($opt{seconds} - $calm, sub { $nemesis->stop }) if $opt{seconds} > $calm;
    $loop->run_until(sub { 0 }, $opt{seconds});
    $driver->stop;
    $nemesis->settle;
    my $t_faults = time;
    # The sends under way keep retrying until they are answered.
    $loop->run_until(sub { !$driver->busy }, 90);
    my $heads = heads($s);
    my $caught = $loop->run_until(sub { $driver->caught_up($heads) }, 30);
    # The final reads: rounds of fresh readers of every room, until a round
    # starts past the bound of the last fault (and of the last send), and at
    # least two rounds.
    my $last = 0;
    for my $f (@{$nemesis->faults}) {
        my $t = $f->{t1} // $f->{t0};
        $last = $t if $t > $last;
    }
    my $past = $last + $bound;
    my $rounds = 0;
    while ($rounds < 2 || time < $past + 0.2) {
        last if $rounds >= 12;
        $loop->run_until(sub { time >= $past + 0.2 }, $past + 0.2 - time)
            if $rounds == 1 && time < $past + 0.2;
        $driver->final_reads(6, $rounds++);
        $loop->run_until(sub { !$driver->pending }, $RECV_TIMEOUT + 20);
    }
    $driver->stop_followers;
    $loop->close_all;
    my $history = {ops => $driver->ops, followers => $driver->followers,
                   faults => $nemesis->faults, table => table($s), heads => $heads,
                   params => {db_timeout => $DB_TIMEOUT, recv_timeout => $RECV_TIMEOUT,
                              t_start => $t_start, pgbouncer => $opt{pgbouncer} ? 1 : 0}};
    my $checker = History::Checker->new(history => $history);
    my @violations = $checker->check;
    # What a violation's reader needs besides the history: the servers'
    # logs and the database's sessions as they were at the end.
    my %logs;
    if (@violations) {
        %logs = map { $_ => $s->log($_) } qw(responder nginx);
        $logs{activity} = eval { $s->sql(q{SELECT pid, application_name, state,
            backend_start, state_change, wait_event, left(query, 60) FROM pg_stat_activity
            WHERE datname = current_database() ORDER BY application_name, pid}) } // $@;
        $logs{pids} = join "\n", map { "responder $_: " . ($s->responder_pid($_) // 'none')
                                        . ' workers ' . join(' ', $s->worker_pids($_)) }
            0 .. $#{$s->{sockets}};
    }
    my @reports = $s->finish(no_test => 1);
    my %kinds = %{$nemesis->counts};
    my $stats = $checker->stats;
    my $summary = sprintf('seed %s: %d ops (%d sends, %d acknowledged (%d after a retry), %d unacknowledged of which %d stored), '
                          . '%d deliveries to %d followers, %d reads (%d final), %d history pages, %s%d faults (%s), '
                          . '%d violations; reads that missed a send within its bound: %d, '
                          . 'of them right after the reader\'s own send: %d of %d such reads; '
                          . 'drain %.1f s%s',
                          $seed, scalar @{$driver->ops}, $stats->{sends} // 0, $stats->{acked} // 0, $stats->{retried} // 0,
                          $stats->{unacked} // 0, $stats->{unacked_stored} // 0,
                          $stats->{delivered} // 0, scalar @{$driver->followers},
                          $stats->{reads} // 0, $stats->{final_reads} // 0, $stats->{history} // 0,
                          $opt{pgbouncer} ? 'through PgBouncer, ' : '',
                          scalar(map { 1 } grep { ($_->{detail} // '') !~ /^not done/ } @{$nemesis->faults}),
                          join(', ', map { "$_ $kinds{$_}" } sort keys %kinds),
                          scalar @violations, $stats->{within_bound} // 0, $stats->{ryw_misses} // 0,
                          $stats->{ryw_reads} // 0, time - $t_faults,
                          $caught ? '' : ' (the followers did not catch up)');
    return {seed => $seed, violations => \@violations, stats => $stats, summary => $summary,
            history => $history, sanitizer => \@reports, faults => \%kinds, logs => \%logs};
}

# Writes the run's history as JSON into $dir; returns the file's name.
sub dump {
    my ($r, $dir) = @_;
    mkdir $dir;
    my $file = "$dir/history-$r->{seed}.json";
    my %h = %{$r->{history}};
    $h{followers} = [map { my %f = %$_; delete @f{qw(rng conn)}; \%f } @{$h{followers}}];
    $h{violations} = $r->{violations};
    for my $name (sort keys %{$r->{logs} // {}}) {
        open(my $fh, '>', "$dir/history-$r->{seed}.$name.log") or next;
        print $fh $r->{logs}{$name};
        close $fh;
    }
    open(my $fh, '>', $file) or return "(cannot write $file: $!)";
    print $fh JSON::PP->new->utf8->canonical->pretty->encode(\%h);
    close $fh;
    return $file;
}

# The violations as text: each with its excerpt, at most $max of them.
sub report {
    my ($r, $max) = @_;
    my @v = @{$r->{violations}};
    my $text = '';
    for my $v (@v[0 .. ($#v < ($max // 10) - 1 ? $#v : ($max // 10) - 1)]) {
        $text .= "property $v->{property}: $v->{what}\n" . join('', map { "    $_\n" } @{$v->{excerpt}});
    }
    $text .= '... and ' . (@v - ($max // 10)) . " more\n" if @v > ($max // 10);
    return $text . "replay: PGCHAT_HISTORY_SEED=$r->{seed} prove t/95-history.t\n";
}

1;
