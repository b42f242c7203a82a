# History/Checker.pm -- pgchat's guarantees, checked over a recorded
# history (History::Driver's ops and followers, History::Nemesis's faults)
# and the messages table as it stands after the run. Pure: it reads only
# what it is given, so t/95-history.t feeds it doctored histories too.
#
#   my $c = History::Checker->new(history => $h);  # see check() for $h
#   my @violations = $c->check;   # each {property, what, excerpt}
#   $c->stats                     # what was checked, read-your-writes misses
#
# The properties (numbers as in the README's "How exactness is tested"):
#   1 once       every acknowledged send is stored exactly once, with the
#                timestamp and text it was acknowledged with
#   2 at most    a send never acknowledged is stored at most once; no row
#                is stored that no client sent
#   3 cursor     a follower sees each message of its room at most once, in
#                timestamp order, as stored, and every stored message after
#                its start up to the run's last head, except behind an
#                explicit gap; a fresh read is a contiguous run of the table
#   4 staleness  a read that starts after an acknowledged send's deadline
#                includes it, unless its page is full; the deadline is the
#                acknowledgement + 1 s, or + (2 x PGCHAT_DB_TIMEOUT + 1 s)
#                after the end of any fault around it. Misses before the
#                deadline are counted, not failed (stats: within_bound,
#                ryw_misses for a read right after the reader's own send).
#                A read answered with a ping while a fault was under way
#                (or within its bound) is not held to it: the ping says
#                only "ask again" (stats: pinged_in_fault)
#   5 history    a /history page is the table's run it claims to be, and
#                "more" is true exactly when older messages exist
#   6 sessions   each nick's joins and parts alternate (join first), and
#                every acknowledged join and part is stored
#   7 liveness   a /recv is answered, and an /events stream hears
#                something, within PGCHAT_RECV_TIMEOUT + 2 x the fault
#                bound, unless the worker serving it (or its whole
#                responder) was paused
package History::Checker;

use strict;
use warnings;

# $h: {ops, followers, faults, table => [{room, seq, ts, nick, type, text,
# mid}], heads => {room => ts the followers had to reach}, params =>
# {db_timeout, recv_timeout, t_start, steady (1 s)}}.
sub new {
    my ($class, %opt) = @_;
    my $h = $opt{history};
    my $self = bless {h => $h, v => [], stats => {}}, $class;
    my $p = $h->{params};
    $self->{steady} = $p->{steady} // 1;
    $self->{bound} = 2 * $p->{db_timeout} + 1;
    for my $row (@{$h->{table}}) {
        push @{$self->{rows}{$row->{room}}}, $row;
        $self->{at}{$row->{room}}{$row->{ts}} = $row;
    }
    $_ = [sort { $a->{ts} <=> $b->{ts} } @$_] for values %{$self->{rows}};
    $self->{faults} = [sort { $a->{t0} <=> $b->{t0} } @{$h->{faults} // []}];
    return $self;
}

sub stats { $_[0]{stats} }

sub check {
    my ($self) = @_;
    $self->check_sends;
    $self->check_followers;
    $self->check_reads;
    $self->check_history;
    $self->check_sessions;
    $self->check_liveness;
    return @{$self->{v}};
}

sub violation {
    my ($self, $property, $what, @excerpt) = @_;
    push @{$self->{v}}, {property => $property, what => $what, excerpt => \@excerpt};
}

# --- how things are shown --------------------------------------------------

sub rel { sprintf '%.2f', $_[1] - ($_[0]{h}{params}{t_start} // 0) }

sub show_op {
    my ($self, $op) = @_;
    my $s = "op #$op->{id} $op->{kind} by $op->{actor} in $op->{room} at "
        . $self->rel($op->{t0}) . '..' . (defined $op->{t1} ? $self->rel($op->{t1}) : '?')
        . ' -> ' . ($op->{status} // 'none');
    $s .= " nick=$op->{nick}" if $op->{nick};
    $s .= " mid=$op->{mid}" if $op->{mid};
    $s .= " ts=$op->{ts}" if $op->{ts};
    $s .= " since=$op->{since}" if defined $op->{since};
    $s .= " before=" . ($op->{before} // 'none') . " limit=$op->{limit}" if $op->{kind} eq 'history';
    $s .= ' after its own send #' . $op->{ryw} if defined $op->{ryw};
    if ($op->{attempts} && @{$op->{attempts}} > 1) {
        $s .= ' attempts=' . join ',', map { ($_->{status} // 0) . ($_->{ts} ? "($_->{ts})" : '') } @{$op->{attempts}};
    }
    if ($op->{msgs}) {
        my @ts = map { $_->{ts} } @{$op->{msgs}};
        $s .= ' got ' . scalar(@ts) . ' [' . (@ts > 6 ? "@ts[0..2] .. @ts[-3..-1]" : "@ts") . ']';
        $s .= ' gap' if $op->{gap};
    }
    return $s;
}

sub show_row {
    my ($row) = @_;
    return "row $row->{room}/$row->{ts} seq $row->{seq} $row->{type} by $row->{nick}"
        . (defined $row->{text} ? " '$row->{text}'" : '') . (defined $row->{mid} ? " mid=$row->{mid}" : '');
}

sub show_fault {
    my ($self, $f) = @_;
    return "fault $f->{kind} at " . $self->rel($f->{t0}) . '..'
        . (defined $f->{t1} ? $self->rel($f->{t1}) : '?') . ($f->{detail} ? " ($f->{detail})" : '');
}

sub faults_between {
    my ($self, $t0, $t1) = @_;
    return map { $self->show_fault($_) }
        grep { $_->{t0} <= $t1 && ($_->{t1} // $_->{t0}) >= $t0 } @{$self->{faults}};
}

sub sends_by_key {
    my ($self) = @_;
    return $self->{sends} if $self->{sends};
    my %by;
    for my $op (grep { $_->{kind} eq 'send' } @{$self->{h}{ops}}) {
        $by{"$op->{room}\0$op->{nick}\0$op->{mid}"} = $op;
    }
    return $self->{sends} = \%by;
}

# --- 1 and 2: sends ----------------------------------------------------------

sub check_sends {
    my ($self) = @_;
    my %rows;
    for my $room (keys %{$self->{rows}}) {
        for my $row (grep { $_->{type} eq 'msg' } @{$self->{rows}{$room}}) {
            push @{$rows{"$row->{room}\0$row->{nick}\0" . ($row->{mid} // '')}}, $row;
        }
    }
    my $sends = $self->sends_by_key;
    for my $key (sort keys %$sends) {
        my $op = $sends->{$key};
        my @stored = @{$rows{$key} // []};
        $self->{stats}{sends}++;
        if (($op->{status} // 0) == 200) {
            $self->{stats}{acked}++;
            $self->{stats}{retried}++ if @{$op->{attempts} // []} > 1;
            my @ts = map { $_->{ts} } grep { ($_->{status} // 0) == 200 } @{$op->{attempts} // []};
            if (@stored != 1) {
                $self->violation(1, 'an acknowledged send is stored ' . scalar(@stored) . ' times',
                                 $self->show_op($op), map { show_row($_) } @stored);
            } elsif (grep { $_ != $stored[0]{ts} } @ts, $op->{ts}) {
                $self->violation(1, 'an acknowledged send was answered a timestamp it was not stored with',
                                 $self->show_op($op), show_row($stored[0]));
            } elsif (($stored[0]{text} // '') ne $op->{text}) {
                $self->violation(1, 'an acknowledged send is stored with another text',
                                 $self->show_op($op), show_row($stored[0]));
            }
        } else {
            $self->{stats}{unacked}++;
            $self->{stats}{unacked_stored}++ if @stored;
            $self->violation(2, 'a send never acknowledged is stored ' . scalar(@stored) . ' times',
                             $self->show_op($op), map { show_row($_) } @stored)
                if @stored > 1;
        }
    }
    for my $key (sort keys %rows) {
        next if $sends->{$key};
        $self->violation(2, 'a row no client sent', map { show_row($_) } @{$rows{$key}});
    }
}

# --- 3: followers and the runs fresh reads get --------------------------------

sub check_followers {
    my ($self) = @_;
    for my $f (@{$self->{h}{followers}}) {
        my $who = "follower $f->{name} ($f->{transport}, room $f->{room}, from $f->{since0}, started at "
            . $self->rel($f->{t_start}) . ')';
        my $got = $f->{got};
        $self->{stats}{delivered} += @$got;
        my $last;
        for my $i (0 .. $#$got) {
            my $m = $got->[$i];
            my $row = $self->{at}{$f->{room}}{$m->{ts}};
            if (!$row || $row->{nick} ne $m->{nick} || $row->{type} ne $m->{type}
                || ($row->{text} // '') ne ($m->{text} // '')) {
                $self->violation(3, "$who got a message the table does not hold",
                                 "delivery $i at " . $self->rel($m->{t}) . ": ts $m->{ts} $m->{type} by $m->{nick}",
                                 $row ? show_row($row) : 'no row at that ts');
            }
            if (defined $last && $m->{ts} <= $last->{ts}) {
                $self->violation(3, "$who got a message twice or out of order",
                                 'delivery ' . ($i - 1) . " at " . $self->rel($last->{t}) . ": ts $last->{ts}",
                                 "delivery $i at " . $self->rel($m->{t}) . ": ts $m->{ts}");
            }
            $last = $m if !defined $last || $m->{ts} > $last->{ts};
        }
        # Excused by a gap: what lies between the cursor at the gap and the
        # first message after it.
        my @excused = map {
            my $next = $got->[$_->{at}];
            [$_->{cursor}, $next ? $next->{ts} : 9e18];
        } @{$f->{gaps}};
        my %seen = map { $_->{ts} => 1 } @$got;
        my $head = $self->{h}{heads}{$f->{room}} // 0;
        my @missed = grep {
            my $ts = $_->{ts};
            !$seen{$ts} && !grep { $ts > $_->[0] && $ts < $_->[1] } @excused;
        } grep { $_->{ts} > $f->{since0} && $_->{ts} <= $head } @{$self->{rows}{$f->{room}} // []};
        if (@missed) {
            my $m = $missed[0];
            my $op = $self->sends_by_key->{"$m->{room}\0$m->{nick}\0" . ($m->{mid} // '')};
            $self->violation(3, "$who missed " . scalar(@missed) . ' stored messages (cursor at the end: '
                             . ($f->{cursor} // '?') . ", head $head)",
                             'first: ' . show_row($m), $op ? $self->show_op($op) : (),
                             "the follower's deliveries around it: " . join(' ', map { $_->{ts} }
                                 grep { abs($_->{ts} - $m->{ts}) < 5000 } @$got),
                             $op ? $self->faults_between($op->{t0} - $self->{bound}, $op->{t1} + $self->{bound}) : ());
        }
    }
}

# A fresh read's answer: strictly increasing, as stored, and a contiguous
# run of the table after its since (after the cut, with a gap).
sub check_run {
    my ($self, $op) = @_;
    my @msgs = @{$op->{msgs}};
    return unless @msgs;
    my $rows = $self->{rows}{$op->{room}} // [];
    my @after = grep { $_->{ts} > $op->{since} } @$rows;
    my $start = 0;
    if ($op->{gap}) {
        $start++ while $start < @after && $after[$start]{ts} < $msgs[0]{ts};
    }
    for my $i (0 .. $#msgs) {
        my $row = $after[$start + $i];
        next if $row && $row->{ts} == $msgs[$i]{ts} && $row->{nick} eq $msgs[$i]{nick}
            && ($row->{text} // '') eq ($msgs[$i]{text} // '');
        return $self->violation(3, 'a read is not the run of the table after its cursor',
                                $self->show_op($op),
                                "answer $i: ts $msgs[$i]{ts} $msgs[$i]{type} by $msgs[$i]{nick}",
                                'expected: ' . ($row ? show_row($row) : 'nothing'));
    }
}

# --- 4: staleness --------------------------------------------------------------

# The time after which every read must include acknowledged send $op.
sub deadline {
    my ($self, $op) = @_;
    my $d = $op->{t1} + $self->{steady};
    for my $f (@{$self->{faults}}) {
        my $t1 = $f->{t1} // $f->{t0};
        next if $t1 < $op->{t1} - $self->{bound} || $f->{t0} > $d;
        $d = $t1 + $self->{bound} if $t1 + $self->{bound} > $d;
    }
    return $d;
}

sub check_reads {
    my ($self) = @_;
    my %acked;
    for my $op (grep { $_->{kind} eq 'send' && ($_->{status} // 0) == 200 } @{$self->{h}{ops}}) {
        push @{$acked{$op->{room}}}, $op;
    }
    my %ops = map { $_->{id} => $_ } @{$self->{h}{ops}};
    for my $op (grep { $_->{kind} eq 'read' && ($_->{status} // 0) == 200 } @{$self->{h}{ops}}) {
        $self->{stats}{reads}++;
        $self->{stats}{final_reads}++ if $op->{final};
        $self->check_run($op);
        # A ping says only "ask again": one that ends a read a fault held
        # up (a worker going away, a database restarting) claims nothing
        # about the room. A ping with no fault near is held to the bound.
        if ($op->{ping} && grep { $_->{t0} <= $op->{t1}
                                  && ($_->{t1} // $_->{t0}) + $self->{bound} >= $op->{t0} }
                           @{$self->{faults}}) {
            $self->{stats}{pinged_in_fault}++;
            next;
        }
        my @msgs = @{$op->{msgs} // []};
        my %in = map { $_->{ts} => 1 } @msgs;
        my $full = @msgs >= 200 || $op->{gap};
        my $max = @msgs ? $msgs[-1]{ts} : 0;
        for my $a (@{$acked{$op->{room}} // []}) {
            next if $a->{ts} <= $op->{since} || $a->{t1} >= $op->{t0} || $in{$a->{ts}};
            next if $full && $a->{ts} > $max;
            if ($self->deadline($a) < $op->{t0}) {
                $self->violation(4, sprintf('a read %.2f s after a send was acknowledged does not include it',
                                            $op->{t0} - $a->{t1}),
                                 $self->show_op($a), $self->show_op($op),
                                 $self->faults_between($a->{t1} - $self->{bound}, $op->{t1}));
            } else {
                $self->{stats}{within_bound}++;
                next unless defined $op->{ryw} && $op->{ryw} == $a->{id};
                $self->{stats}{ryw_misses}++;
                push @{$self->{stats}{ryw_excerpts}}, [$self->show_op($a), $self->show_op($op)];
            }
        }
        $self->{stats}{ryw_reads}++ if defined $op->{ryw};
    }
}

# --- 5: history ------------------------------------------------------------------

sub check_history {
    my ($self) = @_;
    my @acked = grep { $_->{kind} eq 'send' && ($_->{status} // 0) == 200 } @{$self->{h}{ops}};
    for my $op (grep { $_->{kind} eq 'history' && ($_->{status} // 0) == 200 } @{$self->{h}{ops}}) {
        $self->{stats}{history}++;
        my $rows = $self->{rows}{$op->{room}} // [];
        my @msgs = @{$op->{msgs}};
        my @want;
        if (defined $op->{before}) {
            @want = grep { $_->{ts} < $op->{before} } @$rows;
        } elsif (@msgs) {
            @want = grep { $_->{ts} <= $msgs[-1]{ts} } @$rows;
            # Nothing acknowledged before the page was asked for may be
            # newer than its newest: /history reads the table itself.
            my ($late) = grep { $_->{room} eq $op->{room} && $_->{t1} < $op->{t0}
                                && $_->{ts} > $msgs[-1]{ts} } @acked;
            $self->violation(5, 'a /history page without a message acknowledged before it was asked for',
                             $self->show_op($late), $self->show_op($op)) if $late;
        } else {
            my ($late) = grep { $_->{room} eq $op->{room} && $_->{t1} < $op->{t0} } @acked;
            $self->violation(5, 'an empty /history page of a room with acknowledged messages',
                             $self->show_op($late), $self->show_op($op)) if $late;
        }
        my $more = @want > $op->{limit};
        splice @want, 0, @want - $op->{limit} if $more;
        my $got = join ' ', map { "$_->{ts}/$_->{nick}/" . ($_->{text} // '') } @msgs;
        my $exp = join ' ', map { "$_->{ts}/$_->{nick}/" . ($_->{text} // '') } @want;
        if ($got ne $exp) {
            $self->violation(5, 'a /history page is not the run of the table it claims',
                             $self->show_op($op),
                             'expected ' . scalar(@want) . ' [' . join(' ', map { $_->{ts} } @want) . ']');
        } elsif (($op->{more} ? 1 : 0) != ($more ? 1 : 0)) {
            $self->violation(5, '"more" is ' . ($op->{more} ? 'true' : 'false') . ' but older messages '
                             . ($more ? 'exist' : 'do not exist'), $self->show_op($op));
        }
    }
}

# --- 6: sessions ---------------------------------------------------------------------

sub check_sessions {
    my ($self) = @_;
    my (%seq, %want);
    for my $room (keys %{$self->{rows}}) {
        for my $row (grep { $_->{type} ne 'msg' } @{$self->{rows}{$room}}) {
            push @{$seq{"$room\0$row->{nick}"}}, $row;
        }
    }
    for my $op (grep { ($_->{kind} eq 'join' || $_->{kind} eq 'part')
                       && ($_->{status} // 0) == 200 } @{$self->{h}{ops}}) {
        push @{$want{"$op->{room}\0$op->{nick}"}{$op->{kind}}}, $op;
    }
    for my $key (sort(keys %seq), sort(keys %want)) {
        my @rows = @{$seq{$key} // []};
        my $expect = 'join';
        for my $row (@rows) {
            if ($row->{type} ne $expect) {
                $self->violation(6, "two ${\ $row->{type}}s in a row for one nick",
                                 map { show_row($_) } @rows);
                last;
            }
            $expect = $expect eq 'join' ? 'part' : 'join';
        }
        for my $kind (qw(join part)) {
            my @acked = @{$want{$key}{$kind} // []};
            my $stored = grep { $_->{type} eq $kind } @rows;
            $self->{stats}{"${kind}s"} += @acked if !$self->{counted}{$key}{$kind}++;
            next if $stored >= @acked;
            $self->violation(6, scalar(@acked) . " acknowledged ${kind}s but $stored stored",
                             (map { $self->show_op($_) } @acked), map { show_row($_) } @rows);
        }
    }
}

# --- 7: liveness ---------------------------------------------------------------------

sub paused {
    my ($self, $t0, $t1) = @_;
    return grep { $_->{kind} =~ /^pause-/ && $_->{t0} <= $t1 && ($_->{t1} // $_->{t0}) >= $t0 }
        @{$self->{faults}};
}

sub check_liveness {
    my ($self) = @_;
    my $limit = $self->{h}{params}{recv_timeout} + 2 * $self->{bound};
    my @polls = map { my $f = $_; map { [$f, $_] } @{$f->{polls}} } @{$self->{h}{followers}};
    for my $op (grep { $_->{kind} eq 'read' } @{$self->{h}{ops}}) {
        push @polls, [undef, $op];
    }
    for (@polls) {
        my ($f, $p) = @$_;
        next unless defined $p->{t1};
        my @beats = ($p->{t0}, @{$p->{beats} // []}, $p->{t1});
        my ($worst, $at) = (0, $p->{t0});
        for my $i (1 .. $#beats) {
            ($worst, $at) = ($beats[$i] - $beats[$i - 1], $beats[$i - 1])
                if $beats[$i] - $beats[$i - 1] > $worst;
        }
        # A stream we closed ourselves ends on our timer, not on the server.
        next if $f && $f->{transport} eq 'events' && $worst == $p->{t1} - $beats[-2]
            && ($p->{error} // '') eq 'timeout' && $worst <= $limit + 1;
        next if $worst <= $limit || $self->paused($at, $at + $worst);
        $self->{stats}{slow}++;
        $self->violation(7, sprintf('%s waited %.1f s for a word from the server (limit %.1f s)',
                                    $f ? "follower $f->{name} ($f->{transport})" : 'a read', $worst, $limit),
                         $f ? 'request at ' . $self->rel($p->{t0}) . '..' . $self->rel($p->{t1})
                              . " since=$p->{since} -> " . ($p->{status} // 0) . ($p->{error} ? " ($p->{error})" : '')
                            : $self->show_op($p),
                         $self->faults_between($at, $at + $worst));
    }
}

1;
