# History/Http.pm -- many HTTP requests at once in one process, over
# IO::Select: the event loop the history checker's clients and nemesis run
# on. Core Perl only.
#
# Every request is HTTP/1.0 on a connection of its own, so a reply ends
# where the connection does and a stream (/events) comes unchunked. The
# loop never waits for anything but select(2): timers (at, after) and the
# sockets' deadlines wake it.
#
#   my $loop = History::Http->new(port => $port);
#   $loop->request('GET', '/recv?since=0', timeout => 30,
#                  done => sub { my ($status, $body, $err) = @_; ... });
#   $loop->after(0.5, sub { ... });
#   $loop->run_until(sub { $done }, 30);
package History::Http;

use strict;
use warnings;
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

sub new {
    my ($class, %opt) = @_;
    return bless {port => $opt{port}, select => IO::Select->new,
                  conns => {}, timers => []}, $class;
}

sub port { $_[0]{port} }

# Runs $cb at time $t (or $s seconds from now).
sub at { my ($self, $t, $cb) = @_; push @{$self->{timers}}, [$t, $cb]; }
sub after { my ($self, $s, $cb) = @_; $self->at(time + $s, $cb) }

# Starts one request. Options: body (a form, already encoded), headers
# {name => value}, timeout (seconds, the whole request; default 30),
# done->(status, body, error) once it ends (status 0: no reply, error
# says why), and for streams head->(status) and data->(bytes) as they
# come. Returns a handle for cancel().
sub request {
    my ($self, $method, $path, %opt) = @_;
    my $c = {method => $method, path => $path, opt => \%opt, in => '',
             t0 => time, deadline => time + ($opt{timeout} // 30)};
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $self->{port},
                                     Timeout => 2);
    unless ($sock) {
        my $err = "connect: $!";
        $self->after(0, sub { $opt{done}->(0, '', $err) if $opt{done} });
        return $c;
    }
    my $head = "$method $path HTTP/1.0\r\nHost: 127.0.0.1\r\n";
    $head .= "$_: $opt{headers}{$_}\r\n" for sort keys %{$opt{headers} // {}};
    my $body = $opt{body} // '';
    $head .= "Content-Type: application/x-www-form-urlencoded\r\n"
        . 'Content-Length: ' . length($body) . "\r\n" if $method eq 'POST';
    my $req = "$head\r\n$body";
    # Small requests on a fresh connection: the socket's buffer takes them
    # whole, so writing blocks only in theory.
    unless (defined syswrite($sock, $req) ) {
        my $err = "write: $!";
        close $sock;
        $self->after(0, sub { $opt{done}->(0, '', $err) if $opt{done} });
        return $c;
    }
    $sock->blocking(0);
    $c->{sock} = $sock;
    $self->{conns}{fileno $sock} = $c;
    $self->{select}->add($sock);
    return $c;
}

# Ends request $c now, as if the connection had been lost: done gets
# status 0 and $why, unless it has already ended.
sub cancel {
    my ($self, $c, $why) = @_;
    $self->end($c, $why // 'cancelled') if $c->{sock};
}

sub end {
    my ($self, $c, $err) = @_;
    my $sock = delete $c->{sock} or return;
    delete $self->{conns}{fileno $sock};
    $self->{select}->remove($sock);
    close $sock;
    my ($status, $body) = (0, '');
    if (defined $c->{status}) {
        ($status, $body) = ($c->{status}, $c->{body} // '');
        $err = undef if $err && $err eq 'eof';
    }
    $err = 'connection closed before a reply' if !$status && $err && $err eq 'eof';
    $c->{opt}{done}->($status, $body, $err) if $c->{opt}{done};
}

sub readable {
    my ($self, $c) = @_;
    my $n = sysread($c->{sock}, my $buf, 65536);
    if (!defined $n) {
        return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        return $self->end($c, "read: $!");
    }
    return $self->end($c, 'eof') if $n == 0;
    if (defined $c->{status}) {
        $c->{body} .= $buf unless $c->{opt}{data};
        $c->{opt}{data}->($buf) if $c->{opt}{data};
        return;
    }
    $c->{in} .= $buf;
    my $at = index($c->{in}, "\r\n\r\n");
    return if $at < 0;
    my $head = substr($c->{in}, 0, $at);
    my $rest = substr($c->{in}, $at + 4);
    ($c->{status}) = $head =~ m{^HTTP/\d\.\d (\d{3})};
    $c->{status} //= 0;
    $c->{body} = '';
    $c->{opt}{head}->($c->{status}) if $c->{opt}{head};
    if ($c->{opt}{data}) { $c->{opt}{data}->($rest) if length $rest }
    else { $c->{body} = $rest }
}

# One turn of the loop: waits up to $max seconds for a socket, a timer or
# a deadline, and handles what is due.
sub turn {
    my ($self, $max) = @_;
    my $now = time;
    my $wait = $max;
    for (@{$self->{timers}}) { $wait = $_->[0] - $now if $_->[0] - $now < $wait }
    for (values %{$self->{conns}}) {
        $wait = $_->{deadline} - $now if $_->{deadline} - $now < $wait;
    }
    $wait = 0 if $wait < 0;
    if ($self->{select}->count) {
        for my $fh ($self->{select}->can_read($wait)) {
            my $c = $self->{conns}{fileno $fh} or next;
            $self->readable($c);
        }
    } elsif ($wait > 0) {
        sleep $wait;
    }
    $now = time;
    for my $c (values %{$self->{conns}}) {
        $self->end($c, 'timeout') if $c->{sock} && $c->{deadline} <= $now;
    }
    my @due = sort { $a->[0] <=> $b->[0] } grep { $_->[0] <= $now } @{$self->{timers}};
    $self->{timers} = [grep { $_->[0] > $now } @{$self->{timers}}];
    $_->[1]->() for @due;
}

# Turns the loop until $cond is true or $seconds have passed; returns
# whether $cond became true.
sub run_until {
    my ($self, $cond, $seconds) = @_;
    my $end = time + $seconds;
    while (time < $end) {
        return 1 if $cond->();
        $self->turn(0.1 < $end - time ? 0.1 : $end - time);
    }
    return $cond->() ? 1 : 0;
}

# Requests still open.
sub open_count { scalar keys %{$_[0]{conns}} }

# Closes every connection without calling anything back.
sub close_all {
    my ($self) = @_;
    for my $c (values %{$self->{conns}}) {
        $c->{opt}{done} = undef;
        $self->end($c, 'closed');
    }
    $self->{timers} = [];
}

1;
