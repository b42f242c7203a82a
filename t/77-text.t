#!/usr/bin/perl
# 77-text.t -- text that could disguise itself is refused, through the
# whole stack: every C0 control but tab and newline, DEL, every C1
# control, the bidi embeddings and overrides (U+202A-U+202E) and isolates
# (U+2066-U+2069), the Arabic letter mark U+061C, the line and paragraph
# separators U+2028/U+2029, the tag characters (U+E0000-U+E007F) and a
# second LRM/RLM mark answer 400 {"error":"Message has control
# characters"}; text that shows nothing (spaces, zero-width and blank
# characters only) answers 400 {"error":"Empty message"}; both store
# nothing. Newlines, tabs, accents, right-to-left letters, one mark and
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
               0x202a .. 0x202e, 0x2066 .. 0x2069, 0x061c, 0x2028, 0x2029,
               0xe0001, 0xe0020 .. 0xe007f);
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
my ($st2, undef, $raw2) = $s->post('/send', {id => $id, text => "a\x{200e}b\x{200f}c"});
is("$st2 $raw2", "400 $REFUSED", 'a second LRM/RLM mark is refused');

# Text that shows nothing.
my $EMPTY = '{"error":"Empty message"}';
for my $row (['zero-width spaces', "\x{200b}\x{200b}"], ['one mark', "\x{200e}"],
             ['a no-break space and a BOM', "\x{a0}\x{feff}"],
             ['ideographic and Hangul fillers', "\x{3000}\x{3164}"],
             ['a braille blank and a variation selector', "\x{2800}\x{fe0f}"]) {
    my ($st, undef, $raw) = $s->post('/send', {id => $id, text => $row->[1]});
    is("$st $raw", "400 $EMPTY", "only $row->[0]: refused as empty");
}
is($s->sql(q{SELECT count(*) FROM messages WHERE type = 'msg'}), 0, 'none of them was stored');

my @kept = (
    ['a newline and a tab', "line 1\nline 2\tcolumn"],
    ['accents', "caf\x{e9} na\x{ef}ve \x{c5}ngstr\x{f6}m \x{1ebf}"],
    ['emoji', "\x{1f600} \x{1f44d}\x{1f3fd} \x{1f1eb}\x{1f1f7}"],
    ['right-to-left letters', "\x{5e9}\x{5dc}\x{5d5}\x{5dd} \x{645}\x{631}\x{62d}\x{628}\x{627}"],
    ['one mark U+200F and a zero-width joiner', "a\x{200f}b\x{200d}c"],
    ['U+00A0, U+2027, U+202F and U+206A, next to the refused ranges',
     "a\x{a0}b\x{2027}c\x{202f}d\x{206a}e"],
    ['a visible character beside invisible ones', "\x{200b}x\x{feff}"],
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
