# History/Rng.pm -- a named stream of random numbers drawn from one seed:
# the n-th number of stream "w3" of seed 42 is the same on every run,
# however the streams' draws interleave in time. That is what lets one
# seed replay the same schedule of operations and faults.
package History::Rng;

use strict;
use warnings;
use Digest::MD5 qw(md5);

sub new {
    my ($class, $seed, $name) = @_;
    return bless {key => "$seed/$name/", n => 0}, $class;
}

# A number in [0, 1).
sub rand {
    my ($self) = @_;
    return unpack('N', md5($self->{key} . $self->{n}++)) / 4294967296;
}

# A number in [$lo, $hi).
sub between { my ($self, $lo, $hi) = @_; $lo + ($hi - $lo) * $self->rand }

# An integer in [0, $n).
sub int { my ($self, $n) = @_; CORE::int($n * $self->rand) }

# One of @list.
sub pick { my ($self, @list) = @_; $list[$self->int(scalar @list)] }

1;
