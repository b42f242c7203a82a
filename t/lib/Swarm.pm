# Swarm.pm -- many long-polling readers in one process: each follows a room
# with /recv and since, over its own connection, and keeps every message it
# receives. Errors (502, 503, resets) are counted and retried after a pause,
# as a careful client would. Core Perl only.
#
#   my $swarm = Swarm->new($stack->port, room => 'lobby', readers => 100);
#   $swarm->run_until(sub { ... }, 30);   # pump until the sub is true
#   $swarm->texts($i)                     # what reader $i received
package Swarm;

use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(time);

my $JSON = JSON::PP->new->utf8;

sub new {
    my ($class, $port, %opt) = @_;
    my $self = bless {port => $port, room => $opt{room} // 'lobby',
                      select => IO::Select->new, readers => []}, $class;
    for my $i (0 .. ($opt{readers} // 10) - 1) {
        push @{$self->{readers}}, {i => $i, since => $opt{since} // 0,
                                   texts => [], errors => 0, retry_at => 0};
    }
    $self->start($_) for @{$self->{readers}};
    return $self;
}

sub start {
    my ($self, $r) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                     Blocking => 1, Timeout => 5);
    unless ($sock) { $r->{errors}++; $r->{retry_at} = time + 0.2; return }
    print $sock "GET /recv?since=$r->{since}&room=$self->{room} HTTP/1.0\r\n"
        . "Host: 127.0.0.1\r\n\r\n";
    $sock->blocking(0);
    $r->{sock} = $sock;
    $r->{buf} = '';
    $self->{by_fd}{fileno $sock} = $r;
    $self->{select}->add($sock);
}

sub finish_response {
    my ($self, $r) = @_;
    my ($head, $body) = split /\r\n\r\n/, $r->{buf}, 2;
    my ($status) = ($head // '') =~ m{^HTTP/\S+ (\d+)};
    if (($status // 0) == 200) {
        my $json = eval { $JSON->decode($body) };
        if ($json) {
            for my $m (@{$json->{messages}}) {
                push @{$r->{texts}}, $m->{text} if $m->{type} eq 'msg';
                $r->{since} = $m->{timestamp};
            }
            return 1;
        }
    }
    $r->{errors}++;
    $r->{last_error} = $status // 'reset';
    return 0;
}

# Pumps the readers until $done->() is true or $seconds pass. Returns
# whether $done became true.
sub run_until {
    my ($self, $done, $seconds) = @_;
    my $deadline = time + $seconds;
    while (time < $deadline) {
        return 1 if $done->();
        for my $r (@{$self->{readers}}) {
            $self->start($r) if !$r->{sock} && $r->{retry_at} && time >= $r->{retry_at};
        }
        for my $sock ($self->{select}->can_read(0.05)) {
            my $r = $self->{by_fd}{fileno $sock};
            my $n = sysread($sock, my $chunk, 65536);
            next if !defined $n && $!{EAGAIN};
            if ($n) { $r->{buf} .= $chunk; next }
            $self->{select}->remove($sock);
            delete $self->{by_fd}{fileno $sock};
            close $sock;
            $r->{sock} = undef;
            my $ok = $self->finish_response($r);
            $r->{retry_at} = $ok ? time : time + 0.2;
        }
    }
    return $done->();
}

sub readers { scalar @{$_[0]{readers}} }
sub texts { @{$_[0]{readers}[$_[1]]{texts}} }
sub errors { my $n = 0; $n += $_->{errors} for @{$_[0]{readers}}; $n }

# How many readers hold every one of @want (in that order, nothing else).
sub complete {
    my ($self, @want) = @_;
    my $want = join "\n", @want;
    return scalar grep { join("\n", @{$_->{texts}}) eq $want } @{$self->{readers}};
}

sub close_all {
    my ($self) = @_;
    for my $r (@{$self->{readers}}) { close $r->{sock} if $r->{sock}; $r->{sock} = undef }
}

1;
