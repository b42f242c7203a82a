# History/Driver.pm -- the history checker's clients: writers that join,
# send with a mid (retrying as our browser client does), read afresh,
# page /history and part; followers that read a room along their cursor
# over /recv or /events. Everything they do is recorded with its start and
# end time and its result, for History::Checker.
#
# All of it runs on one History::Http loop, so the operations overlap. The
# choices come from History::Rng streams named after each client, so one
# seed gives the same choices whatever the timing.
#
# The record (see History::Checker for what is checked):
#   ops:       {kind => join|send|part|read|history, actor, room, t0, t1,
#               status, ...}; a send has mid, text, attempts [{t0, t1,
#               status, ts}], ts once acknowledged; a read has since,
#               msgs, gap, ryw (the send it reads after, if any)
#   followers: {name, room, transport => recv|events, since0, t_start,
#               got [{t, ts, nick, type, text}], gaps [{t, cursor}],
#               polls [{t0, t1, status, beats}]}
package History::Driver;

use strict;
use warnings;
use History::Rng;
use JSON::PP;
use Time::HiRes qw(time);

my $JSON = JSON::PP->new->utf8;

sub decode_json_body {
    my ($body) = @_;
    return eval { $JSON->decode($body) };
}

sub form {
    my (%p) = @_;
    return join '&', map {
        my $v = $p{$_};
        $v =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
        "$_=$v";
    } sort keys %p;
}

# Options: loop (History::Http), seed, rooms {room => writers}, followers
# (a list of [room, transport] started at once), late (followers started
# at random times), duration (s), recv_timeout and db_timeout (the
# responder's, for the requests' own deadlines).
sub new {
    my ($class, %opt) = @_;
    my $self = bless {%opt, ops => [], followers => [], writers => [],
                      acked => {}, stopping => 0}, $class;
    $self->{rng} = History::Rng->new($opt{seed}, 'driver');
    return $self;
}

sub ops { $_[0]{ops} }
sub followers { $_[0]{followers} }
sub loop { $_[0]{loop} }

sub record {
    my ($self, %op) = @_;
    my $op = {id => scalar @{$self->{ops}}, t0 => time, %op};
    push @{$self->{ops}}, $op;
    return $op;
}

# Starts every client; the run lasts until stop().
sub start {
    my ($self) = @_;
    my $t0 = time;
    $self->{t_start} = $t0;
    my $i = 0;
    for my $room (sort keys %{$self->{rooms}}) {
        for (1 .. $self->{rooms}{$room}) {
            my $name = 'w' . $i++;
            my $w = {name => $name, room => $room, base => $name, gen => 0,
                     sent => 0, rng => History::Rng->new($self->{seed}, $name)};
            push @{$self->{writers}}, $w;
            $self->{loop}->after($w->{rng}->between(0, 0.5), sub { $self->step($w) });
        }
    }
    $self->follow($_->[0], $_->[1], 1) for @{$self->{followers_at_start} // []};
    for my $k (1 .. ($self->{late} // 0)) {
        my $at = $self->{rng}->between(0.2, 0.8) * $self->{duration};
        my $room = $self->{rng}->pick(grep { $_ ne 'quiet' } sort keys %{$self->{rooms}});
        my $transport = $self->{rng}->pick(qw(recv events));
        $self->{loop}->after($at, sub {
            return if $self->{stopping};
            my $acked = $self->{acked}{$room} // [];
            $self->follow($room, $transport, @$acked ? $acked->[-1] : 1);
        });
    }
}

# No new operations from now on; sends under way keep retrying.
sub stop { $_[0]{stopping} = 1 }

# Whether a writer still has an operation under way.
sub busy { scalar grep { $_->{busy} } @{$_[0]{writers}} }

# Whether every follower's cursor has reached $heads->{room}.
sub caught_up {
    my ($self, $heads) = @_;
    for my $f (@{$self->{followers}}) {
        return 0 if ($f->{cursor} // 0) < ($heads->{$f->{room}} // 0);
    }
    return 1;
}

# Stops the followers: their requests are cancelled, their records kept.
sub stop_followers {
    my ($self) = @_;
    for my $f (@{$self->{followers}}) {
        $f->{stopped} = 1;
        $self->{loop}->cancel($f->{conn}, 'stopped') if $f->{conn};
    }
}

# --- writers -----------------------------------------------------------------

sub next_step {
    my ($self, $w, $pause) = @_;
    $w->{busy} = 0;
    return if $self->{stopping};
    $self->{loop}->after($pause // $w->{rng}->between(0, 0.3), sub { $self->step($w) });
}

sub step {
    my ($self, $w) = @_;
    return if $self->{stopping};
    $w->{busy} = 1;
    return $self->join_room($w) unless $w->{id};
    my $r = $w->{rng}->rand;
    # A quiet room: few sends, no follower, mostly fresh readers, so that
    # its windows are kept by notifications alone (issue 18's stale window).
    if ($w->{room} eq 'quiet') {
        if ($r < 0.2) { $self->send_text($w) }
        elsif ($r < 0.9) { $self->read_fresh($w) }
        else { $self->next_step($w, $w->{rng}->between(0.3, 1.2)) }
        return;
    }
    if ($r < 0.06) { $self->burst($w) }
    elsif ($r < 0.60) { $self->send_text($w) }
    elsif ($r < 0.74) { $self->read_fresh($w) }
    elsif ($r < 0.84) { $self->history_page($w) }
    elsif ($r < 0.88) { $self->part_room($w) }
    else { $self->next_step($w, $w->{rng}->between(0.3, 1.2)) }
}

# A pause before attempt $n + 1 of a request that failed (0.25 s doubling
# to 2 s), as the browser client's back-off.
sub backoff { my $n = $_[0]; my $d = 0.25 * 2**$n; $d > 2 ? 2 : $d }

sub join_room {
    my ($self, $w) = @_;
    my $nick = $w->{base} . ($w->{gen} ? "g$w->{gen}" : '');
    my $op = $self->record(kind => 'join', actor => $w->{name}, room => $w->{room},
                           nick => $nick, attempts => []);
    my $try;
    $try = sub {
        my $a = {t0 => time};
        $self->{loop}->request('GET', "/join?nick=$nick&room=$w->{room}", timeout => 15,
                               done => sub {
            my ($status, $body, $err) = @_;
            @$a{qw(t1 status error)} = (time, $status, $err);
            push @{$op->{attempts}}, $a;
            my $json = decode_json_body($body);
            if ($status == 200 && $json && $json->{id}) {
                @$op{qw(t1 status)} = (time, 200);
                @$w{qw(id nick)} = ($json->{id}, $nick);
                return $self->next_step($w);
            }
            if ($status >= 400 && $status < 500) {
                @$op{qw(t1 status error)} = (time, $status, $json ? $json->{error} : $body);
                $w->{gen}++;    # Nick in use: a session of ours whose reply was lost
                return $self->next_step($w);
            }
            if ($self->{stopping} || @{$op->{attempts}} > 30) {
                @$op{qw(t1 status)} = (time, $status);
                return $self->next_step($w);
            }
            $self->{loop}->after(backoff(scalar @{$op->{attempts}}), $try);
        });
    };
    $try->();
}

# Several sends of one writer at once (2 to 4, as from several tabs): the
# writers' group commit stores them in one transaction, or in transactions
# of the same millisecond, so their timestamps follow one another (ts,
# ts + 1, ...). Only then can an off-by-one on a cursor (since + 1) skip
# a message: one send at a time never stores two timestamps 1 ms apart.
sub burst {
    my ($self, $w) = @_;
    my $n = 2 + $w->{rng}->int(3);
    $w->{burst} = $n;
    $self->send_text($w, 1) for 1 .. $n;
}

# A send is over: the writer's next step, or, in a burst, once all are.
sub sent {
    my ($self, $w) = @_;
    return if $w->{burst} && --$w->{burst} > 0;
    $self->next_step($w);
}

sub send_text {
    my ($self, $w, $in_burst) = @_;
    my $n = ++$w->{sent};
    my $text = "$w->{name} says $n" . ($n % 7 ? '' : " caf\x{e9} \x{2713}");
    # One send in ten is from a client that gives up at the first failure
    # (a tab closed mid-send): those are the sends never acknowledged.
    # Every choice is drawn now, not when an answer comes, so that a seed
    # makes the same choices however a burst's answers interleave.
    my $patient = $w->{rng}->rand >= 0.1;
    my $repeat = $w->{rng}->rand < 0.08;
    my $ryw = !$in_burst && $w->{rng}->rand < 0.25;
    my $op = $self->record(kind => 'send', actor => $w->{name}, room => $w->{room},
                           nick => $w->{nick}, mid => "$w->{name}-$n", text => $text,
                           attempts => [], patient => $patient);
    my $utf8 = $text;
    utf8::encode($utf8);
    my $body = form(id => $w->{id}, text => $utf8, mid => $op->{mid}, room => $w->{room});
    my $try;
    $try = sub {
        my $a = {t0 => time};
        $self->{loop}->request('POST', '/send', body => $body, timeout => 15, done => sub {
            my ($status, $rbody, $err) = @_;
            @$a{qw(t1 status error)} = (time, $status, $err);
            push @{$op->{attempts}}, $a;
            my $json = decode_json_body($rbody);
            if ($status == 200 && $json && $json->{timestamp}) {
                $a->{ts} = $json->{timestamp};
                unless (defined $op->{ts}) {
                    @$op{qw(t1 status ts)} = (time, 200, $json->{timestamp});
                    push @{$self->{acked}{$w->{room}}}, $json->{timestamp};
                }
                # Now and then the same mid once more, as a client does
                # whose reply was lost: it must answer the same timestamp
                # and store nothing.
                if (!$op->{repeats} && $repeat) {
                    $op->{repeats} = 1;
                    return $self->{loop}->after(0.05, $try);
                }
                # Read your write: a fresh read right away, through
                # whichever worker nginx picks.
                return $self->read_fresh($w, $op) if $ryw;
                return $self->sent($w);
            }
            # A repeat that fails leaves the send acknowledged.
            return $self->sent($w) if defined $op->{ts} && ($status >= 400 || !$patient);
            if ($status >= 400 && $status < 500) {
                @$op{qw(t1 status error)} = (time, $status, $json ? $json->{error} : $rbody);
                delete $w->{id} if ($op->{error} // '') =~ /session/i;
                return $self->sent($w);
            }
            # The browser client sends the same mid again until 200 or a
            # refusal; it gives up on nothing. Ours gives up after 60 s.
            if (!$patient || time - $op->{t0} > 60) {
                @$op{qw(t1 status)} = (time, $status);
                return $self->sent($w);
            }
            $self->{loop}->after(backoff(scalar @{$op->{attempts}}), $try);
        });
    };
    $try->();
}

sub part_room {
    my ($self, $w) = @_;
    my $op = $self->record(kind => 'part', actor => $w->{name}, room => $w->{room},
                           nick => $w->{nick});
    my $body = form(id => $w->{id}, room => $w->{room});
    $self->{loop}->request('POST', '/part', body => $body, timeout => 15, done => sub {
        my ($status, $rbody, $err) = @_;
        @$op{qw(t1 status error)} = (time, $status, $err);
        delete $w->{id};
        # A part whose reply was lost may still be stored: the next join
        # takes a new nick rather than meet "Nick in use".
        $w->{gen}++ unless $status == 200;
        $self->next_step($w);
    });
}

# Where a fresh reader starts: 0 now and then, else just after one of the
# room's last 30 acknowledged sends, so that the answer is seldom a full
# page.
sub fresh_since {
    my ($self, $w) = @_;
    my $acked = $self->{acked}{$w->{room}} // [];
    # The quiet room is read as a page load reads it: from the start.
    my $from_zero = $w->{room} eq 'quiet' ? 1 : 0.15;
    return 0 if !@$acked || $w->{rng}->rand < $from_zero;
    my $back = $w->{rng}->int(30);
    return $acked->[$#$acked - $back < 0 ? 0 : $#$acked - $back];
}

sub read_fresh {
    my ($self, $w, $after) = @_;
    my $since = fresh_since($self, $w);
    my $op = $self->record(kind => 'read', actor => $w->{name}, room => $w->{room},
                           since => $since, ryw => $after ? $after->{id} : undef);
    $self->{loop}->request('GET', "/recv?since=$since&room=$w->{room}",
                           timeout => $self->{recv_timeout} + 15, done => sub {
        my ($status, $body, $err) = @_;
        @$op{qw(t1 status error)} = (time, $status, $err);
        my $json = decode_json_body($body);
        if ($status == 200 && $json) {
            $op->{msgs} = [map { message($_) } @{$json->{messages} // []}];
            $op->{gap} = $json->{gap} ? 1 : 0;
            $op->{ping} = $json->{ping} ? 1 : 0;
        }
        $self->next_step($w);
    });
}

sub history_page {
    my ($self, $w) = @_;
    my $acked = $self->{acked}{$w->{room}} // [];
    my $before = @$acked && $w->{rng}->rand < 0.5 ? $w->{rng}->pick(@$acked) : undef;
    my $limit = 1 + $w->{rng}->int(60);
    my $op = $self->record(kind => 'history', actor => $w->{name}, room => $w->{room},
                           before => $before, limit => $limit);
    my $q = "/history?room=$w->{room}&limit=$limit" . (defined $before ? "&before=$before" : '');
    $self->{loop}->request('GET', $q, timeout => 15, done => sub {
        my ($status, $body, $err) = @_;
        @$op{qw(t1 status error)} = (time, $status, $err);
        my $json = decode_json_body($body);
        if ($status == 200 && $json) {
            $op->{msgs} = [map { message($_) } @{$json->{messages} // []}];
            $op->{more} = $json->{more} ? 1 : 0;
        }
        $self->next_step($w);
    });
}

# After the run, when the faults have stopped: fresh reads of every room
# that has acknowledged sends, $per of them at once per room, as page loads
# would read it (from since=0; a room of more than 150 acknowledged sends
# from its 100th last). Several at once, so that nginx spreads them over
# both responders and their workers: a worker that kept a window its
# notifications no longer keep (issue 18) answers one of them with an old
# room, and property 4 fails it. Returns how many were started; the
# driver's pending count says how many are still under way.
sub final_reads {
    my ($self, $per, $round) = @_;
    my $n = 0;
    for my $room (sort keys %{$self->{rooms}}) {
        my $acked = $self->{acked}{$room} // [];
        next unless @$acked;
        my $since = @$acked > 150 ? $acked->[-100] : 0;
        for my $k (1 .. $per) {
            my $op = $self->record(kind => 'read', actor => "final$round", room => $room,
                                   since => $since, final => 1);
            $self->{pending}++;
            $n++;
            $self->{loop}->request('GET', "/recv?since=$since&room=$room",
                                   timeout => $self->{recv_timeout} + 15, done => sub {
                my ($status, $body, $err) = @_;
                @$op{qw(t1 status error)} = (time, $status, $err);
                my $json = decode_json_body($body);
                if ($status == 200 && $json) {
                    $op->{msgs} = [map { message($_) } @{$json->{messages} // []}];
                    $op->{gap} = $json->{gap} ? 1 : 0;
                    $op->{ping} = $json->{ping} ? 1 : 0;
                }
                $self->{pending}--;
            });
        }
    }
    return $n;
}

sub pending { $_[0]{pending} // 0 }

sub message {
    my ($m) = @_;
    return {ts => $m->{timestamp}, nick => $m->{nick}, type => $m->{type},
            text => $m->{text}, mid => $m->{mid}};
}

# --- followers ---------------------------------------------------------------

# A reader of $room that follows its cursor from $since for the rest of
# the run, over /recv or /events.
sub follow {
    my ($self, $room, $transport, $since) = @_;
    my $name = 'f' . scalar @{$self->{followers}};
    my $f = {name => $name, room => $room, transport => $transport,
             since0 => $since, cursor => $since, t_start => time,
             got => [], gaps => [], polls => [],
             rng => History::Rng->new($self->{seed}, $name)};
    push @{$self->{followers}}, $f;
    $transport eq 'recv' ? $self->poll($f) : $self->stream($f);
    return $f;
}

sub absorb {
    my ($self, $f, $m) = @_;
    push @{$f->{got}}, {%$m, t => time};
    $f->{cursor} = $m->{ts} if $m->{ts} > $f->{cursor};
}

sub poll {
    my ($self, $f) = @_;
    return if $f->{stopped};
    my $p = {t0 => time, since => $f->{cursor}};
    # A reply is due within the ping's timeout; the rest is for faults.
    my $timeout = $self->{recv_timeout} + 4 * $self->{db_timeout} + 15;
    $f->{conn} = $self->{loop}->request('GET', "/recv?since=$f->{cursor}&room=$f->{room}",
                                        timeout => $timeout, done => sub {
        my ($status, $body, $err) = @_;
        @$p{qw(t1 status error)} = (time, $status, $err);
        push @{$f->{polls}}, $p;
        delete $f->{conn};
        return if $f->{stopped};
        my $json = decode_json_body($body);
        if ($status == 200 && $json) {
            if ($json->{gap}) {
                push @{$f->{gaps}}, {t => time, cursor => $f->{cursor},
                                     at => scalar @{$f->{got}}};
            }
            $p->{n} = scalar @{$json->{messages} // []};
            $p->{ping} = $json->{ping} ? 1 : 0;
            $self->absorb($f, message($_)) for @{$json->{messages} // []};
            return $self->poll($f);
        }
        $self->{loop}->after($f->{rng}->between(0.2, 1), sub { $self->poll($f) });
    });
}

# An EventSource: one stream at a time, reopened from its last id when it
# breaks, and closed by ourselves now and then as a browser tab would.
sub stream {
    my ($self, $f) = @_;
    return if $f->{stopped};
    my $p = {t0 => time, since => $f->{cursor}, beats => []};
    my $buf = '';
    my $life = $f->{rng}->between(2, 10);
    $f->{conn} = $self->{loop}->request('GET', "/events?since=$f->{cursor}&room=$f->{room}",
        headers => {'Last-Event-ID' => $f->{cursor}},
        timeout => $life,
        data => sub {
            $buf .= $_[0];
            push @{$p->{beats}}, time;
            while ((my $at = index($buf, "\n\n")) >= 0) {
                my $block = substr($buf, 0, $at);
                substr($buf, 0, $at + 2, '');
                my %field;
                for (split /\n/, $block) {
                    next if /^:/;
                    my ($k, $v) = /^([a-z]+): ?(.*)$/ or next;
                    $field{$k} = $v;
                }
                my $event = $field{event} // 'message';
                if ($event eq 'gap') {
                    push @{$f->{gaps}}, {t => time, cursor => $f->{cursor},
                                     at => scalar @{$f->{got}}};
                } elsif ($event eq 'message' && defined $field{id} && defined $field{data}) {
                    my $m = decode_json_body($field{data});
                    $self->absorb($f, message($m)) if $m;
                }
            }
        },
        done => sub {
            my ($status, $body, $err) = @_;
            @$p{qw(t1 status error)} = (time, $status, $err);
            push @{$f->{polls}}, $p;
            delete $f->{conn};
            return if $f->{stopped};
            $self->{loop}->after($f->{rng}->between(0.05, 0.5), sub { $self->stream($f) });
        });
}

1;
