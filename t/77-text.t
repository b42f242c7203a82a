#!/usr/bin/perl
# 77-text.t -- text that could disguise itself is refused, through the
# whole stack: every C0 control but tab and newline, DEL, every C1
# control, the bidi embeddings and overrides (U+202A-U+202E) and isolates
# (U+2066-U+2069) answer 400 {"error":"Message has control characters"}
# and store nothing; newlines, tabs, accents, right-to-left letters and
# emoji are stored as sent.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;

my $s = Stack->new(workers => 1);
my $id = $s->join_nick('texter');
my $REFUSED = '{"error":"Message has control characters"}';

my @refused = ((grep { $_ != 9 && $_ != 10 } 1 .. 31), 0x7f .. 0x9f,
               0x202a .. 0x202e, 0x2066 .. 0x2069);
my %bad;
for my $cp (@refused) {
    my $text = "fake 12:34 admin " . chr($cp) . " text";    # HTTP::Tiny encodes
    my ($st, undef, $raw) = $s->post('/send', {id => $id, text => $text});
    $bad{sprintf 'U+%04X', $cp} = "$st $raw" unless $st == 400 && $raw eq $REFUSED;
}
is(scalar(keys %bad), 0, 'each of the ' . scalar(@refused)
   . ' control characters is refused with 400 "Message has control characters"')
    or diag(explain \%bad);

# The classic client's GET, percent-encoded.
for my $esc ('%1B%5B2J', '%E2%80%AE', '%C2%9B', '%07') {
    my ($st, undef, $raw) = $s->get("/send?id=$id&text=a$esc");
    is("$st $raw", "400 $REFUSED", "GET /send with $esc is refused too");
}
is($s->sql(q{SELECT count(*) FROM messages WHERE type = 'msg'}), 0, 'none of them was stored');

my @kept = (
    ['a newline and a tab', "line 1\nline 2\tcolumn"],
    ['accents', "caf\x{e9} na\x{ef}ve \x{c5}ngstr\x{f6}m \x{1ebf}"],
    ['emoji', "\x{1f600} \x{1f44d}\x{1f3fd} \x{1f1eb}\x{1f1f7}"],
    ['right-to-left letters', "\x{5e9}\x{5dc}\x{5d5}\x{5dd} \x{645}\x{631}\x{62d}\x{628}\x{627}"],
    ['the marks U+200E/U+200F and a zero-width joiner', "a\x{200e}b\x{200f}c\x{200d}d"],
    ['U+00A0, U+2029 and U+206A, next to the refused ranges', "a\x{a0}b\x{2029}c\x{206a}d"],
);
for my $row (@kept) {
    my ($what, $text) = @$row;
    my ($st, undef, $raw) = $s->post('/send', {id => $id, text => $text});
    is($st, 200, "$what: accepted") or diag($raw);
}
my (undef, $json) = $s->get('/recv?since=0');
my @texts = map { $_->{text} } grep { $_->{type} eq 'msg' } @{$json->{messages}};
is_deeply(\@texts, [map { $_->[1] } @kept], 'and stored exactly as sent');

$s->finish;
done_testing;
