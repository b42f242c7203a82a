#!/usr/bin/perl
# 70-hostile.t -- hostile and broken input, through nginx to the responder
# and PostgreSQL. A table of requests, each of which must get a 4xx JSON
# error ({"error":"..."}, Content-Type application/json) or be stored
# verbatim as text: never a 5xx, never a hang. Then: honest sends racing
# hostile ones, clients that stall half-way through a request, hostile ids
# next to an honest poller, 1000 joins that must be swept without the
# responder growing, and a final check that the messages table holds
# exactly what was accepted.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Swarm;
use POSIX ();
use Test::More;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(sleep time);

my $JSON = JSON::PP->new->utf8->canonical;
my $FORM = 'application/x-www-form-urlencoded';
my $HANG = 10;    # seconds: any answer slower than this is a hang

# RATE_LIMIT=0: the per-session rate limit and the room cap are tested in
# 75-limits.t; here they would only blur what is being tested.
my $s = Stack->new(workers => 2,
                   env => {RATE_LIMIT => 0, PGCHAT_RECV_TIMEOUT => 1});

# --- helpers ----------------------------------------------------------------

# Percent-encodes every byte but the unreserved ones.
sub enc {
    my ($bytes) = @_;
    $bytes =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $bytes;
}

# A form body from name => value pairs (values are byte strings).
sub form {
    my @kv = @_;
    my @pairs;
    push @pairs, enc(shift @kv) . '=' . enc(shift @kv) while @kv;
    return join '&', @pairs;
}

# Sends raw bytes on a new connection and reads the answer until the server
# closes or $timeout passes. Returns (status, lower-cased headers, body);
# status 0 when nothing came back.
sub raw_http {
    my ($port, $bytes, $timeout) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                     Timeout => 5)
        or die "connect: $!";
    binmode $sock;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($sock, $bytes, 65536, $off);
        last unless $n;    # nginx may answer and close before reading all
        $off += $n;
    }
    my ($buf, $sel, $end) = ('', IO::Select->new($sock), time + ($timeout // $HANG));
    while (time < $end) {
        last unless $sel->can_read($end - time);
        my $n = sysread($sock, $buf, 65536, length $buf);
        last unless $n;
    }
    close $sock;
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    my ($status) = ($head // '') =~ m{^HTTP/\d\.\d (\d{3})};
    my %h;
    for (split /\r\n/, $head // '') {
        $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    # A 100 Continue comes before the real answer.
    if (($status // 0) == 100) {
        ($head, $body) = split /\r\n\r\n/, $body // '', 2;
        ($status) = $head =~ m{^HTTP/\d\.\d (\d{3})};
    }
    return ($status // 0, \%h, $body // '');
}

# Opens a connection, writes $bytes and leaves it open.
sub stall {
    my ($port, $bytes) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                     Timeout => 5)
        or die "connect: $!";
    binmode $sock;
    syswrite($sock, $bytes) if length $bytes;
    return $sock;
}

# Resident memory of the responder: its parent and every worker, in bytes.
sub responder_rss {
    my ($stack) = @_;
    my $parent = $stack->responder_pid or return 0;
    my $total = 0;
    for my $pid ($parent, Stack::children_of($parent)) {
        open(my $st, '<', "/proc/$pid/status") or next;
        while (<$st>) {
            $total += $1 * 1024 if /^VmRSS:\s+(\d+) kB/;
        }
    }
    return $total;
}

# --- the sessions the table uses ----------------------------------------------

my @accepted;        # [room, nick, text bytes] of every send answered 200
my $joins = 0;       # joins answered 200 in the lobby of $s
my $id = $s->join_nick('honest');
$joins++;
my $head = 0;        # the lobby's cursor, for reading back stored texts

# --- the table ----------------------------------------------------------------
#
# Each row: name, method, path (with {ID}: the honest session's id), body,
# content type, expected status, and what else is expected:
#   'text'    the exact error ({"error":"text"})
#   \'bytes'  a send stored verbatim with these bytes as its text
#   {k => v}  fields of a 200 JSON answer
#   undef     a 200 (or a 4xx JSON error of any wording, for nginx's codes)
#
# Method RAW sends the path as the whole request, byte for byte.

my $euro = "\xe2\x82\xac";
my $mb = 'a' x (1024 * 1024);
my $long = 'n' x 10_000;
my $multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n"
    . "{ID}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n"
    . "multi\r\n--XyZ--\r\n";
my $NUL = 'Malformed parameters (NUL byte)';
my $UTF8 = 'Message is not valid UTF-8';
my $NOID = 'No such session id';
my $CT = 'Body must be application/x-www-form-urlencoded';

my @rows = (
    # Missing, empty and duplicate parameters.
    ['join without nick', 'GET', '/join', undef, undef, 400, 'Bad nick.'],
    ['join with an empty nick', 'GET', '/join?nick=', undef, undef, 400, 'Bad nick.'],
    ['join with a bare key', 'GET', '/join?nick', undef, undef, 400, 'Bad nick.'],
    ['join with only separators', 'GET', '/join?&&&=&', undef, undef, 400, 'Bad nick.'],
    ['join with two nicks: the first wins', 'GET', '/join?nick=dupA&nick=dupB',
     undef, undef, 200, {nick => 'dupA'}],
    ['join with an empty key as well', 'GET', '/join?=x&nick=emptykey', undef,
     undef, 200, {nick => 'emptykey'}],
    ['send without id', 'GET', '/send?text=x', undef, undef, 400, $NOID],
    ['send with an empty id', 'GET', '/send?id=&text=x', undef, undef, 400, $NOID],
    ['send without text', 'GET', '/send?id={ID}', undef, undef, 400, 'Empty message'],
    ['send with an empty text', 'GET', '/send?id={ID}&text=', undef, undef, 400,
     'Empty message'],
    ['send with spaces as +', 'GET', '/send?id={ID}&text=+++', undef, undef, 400,
     'Empty message'],
    ['send with escaped white space', 'GET', '/send?id={ID}&text=%09%0A%0B%0C%0D%20',
     undef, undef, 400, 'Empty message'],
    ['send with two texts: the first wins', 'GET',
     '/send?id={ID}&text=first&text=second', undef, undef, 200, \'first'],
    ['a form body wins over the query', 'POST', '/send?text=fromquery',
     'id={ID}&text=frombody', $FORM, 200, \'frombody'],
    ['recv without since', 'GET', '/recv', undef, undef, 400,
     'Must supply since parameter'],
    ['recv with an empty since', 'GET', '/recv?since=', undef, undef, 400,
     'Must supply since parameter'],
    ['recv with two since: the first wins', 'GET', '/recv?since=0&since=abc',
     undef, undef, 200, undef],
    ['recv with an empty room', 'GET', '/recv?since=0&room=', undef, undef, 400,
     'Bad room.'],

    # since.
    ['since a word', 'GET', '/recv?since=abc', undef, undef, 400,
     'Must supply since parameter'],
    ['since negative', 'GET', '/recv?since=-1', undef, undef, 200, undef],
    ['since hugely negative', 'GET', '/recv?since=-99999999999999999999999',
     undef, undef, 200, undef],
    ['since beyond int64', 'GET', '/recv?since=99999999999999999999999', undef,
     undef, 200, {ping => JSON::PP::true}],
    ['since INT64_MAX + 1', 'GET', '/recv?since=9223372036854775808', undef,
     undef, 200, {ping => JSON::PP::true}],
    ['since a float', 'GET', '/recv?since=1.5', undef, undef, 200, undef],
    ['since with an exponent', 'GET', '/recv?since=1e5', undef, undef, 400,
     'Must supply since parameter'],
    ['since in hex', 'GET', '/recv?since=0x10', undef, undef, 400,
     'Must supply since parameter'],
    ['since with a plus', 'GET', '/recv?since=%2B1', undef, undef, 400,
     'Must supply since parameter'],
    ['since NaN', 'GET', '/recv?since=NaN', undef, undef, 400,
     'Must supply since parameter'],
    ['since two dots', 'GET', '/recv?since=1.5.5', undef, undef, 400,
     'Must supply since parameter'],
    ['since with a trailing space', 'GET', '/recv?since=1%20', undef, undef, 400,
     'Must supply since parameter'],

    # The length limit, in bytes of UTF-8.
    ['text of exactly 4096 bytes', 'POST', '/send', 'id={ID}&text=' . ('y' x 4096),
     $FORM, 200, \('y' x 4096)],
    ['text of 4097 bytes', 'POST', '/send', 'id={ID}&text=' . ('y' x 4097), $FORM,
     400, 'Message too long'],
    ['4096 bytes of three-byte characters', 'GET',
     '/send?id={ID}&text=' . enc($euro x 1365 . 'a'), undef, undef, 200,
     \($euro x 1365 . 'a')],
    ['4097 bytes, the last character split by the limit', 'GET',
     '/send?id={ID}&text=' . enc('a' x 4094 . $euro), undef, undef, 400,
     'Message too long'],
    ['60 KB of text (under the body limit)', 'POST', '/send',
     'id={ID}&text=' . ('z' x 60_000), $FORM, 400, 'Message too long'],

    # Invalid UTF-8.
    ['UTF-8: overlong "/"', 'GET', '/send?id={ID}&text=%C0%AF', undef, undef, 400, $UTF8],
    ['UTF-8: overlong "/" in three bytes', 'GET', '/send?id={ID}&text=%E0%80%AF',
     undef, undef, 400, $UTF8],
    ['UTF-8: overlong NUL (C0 80)', 'GET', '/send?id={ID}&text=a%C0%80b', undef,
     undef, 400, $UTF8],
    ['UTF-8: surrogate U+D800', 'GET', '/send?id={ID}&text=%ED%A0%80', undef, undef,
     400, $UTF8],
    ['UTF-8: CESU-8 surrogate pair', 'GET', '/send?id={ID}&text=%ED%A0%BD%ED%B8%80',
     undef, undef, 400, $UTF8],
    ['UTF-8: truncated at the end', 'GET', '/send?id={ID}&text=ok%E2%82', undef,
     undef, 400, $UTF8],
    ['UTF-8: truncated in the middle', 'GET', '/send?id={ID}&text=%E2%82ok', undef,
     undef, 400, $UTF8],
    ['UTF-8: 0xFF', 'GET', '/send?id={ID}&text=%FF', undef, undef, 400, $UTF8],
    ['UTF-8: 0xFE 0xFF', 'GET', '/send?id={ID}&text=%FE%FF', undef, undef, 400, $UTF8],
    ['UTF-8: lone continuation byte', 'GET', '/send?id={ID}&text=%80', undef, undef,
     400, $UTF8],
    ['UTF-8: beyond U+10FFFF', 'GET', '/send?id={ID}&text=%F4%90%80%80', undef, undef,
     400, $UTF8],
    ['UTF-8: a five-byte form', 'GET', '/send?id={ID}&text=%F8%88%80%80%80', undef,
     undef, 400, $UTF8],
    ['UTF-8: raw bytes in a POST body', 'POST', '/send', "id={ID}&text=\xff\xfe",
     $FORM, 400, $UTF8],
    ['UTF-8: Latin-1 in a POST body', 'POST', '/send', "id={ID}&text=caf\xe9",
     $FORM, 400, $UTF8],

    # NUL bytes.
    ['%00 in a nick', 'GET', '/join?nick=a%00b', undef, undef, 400, $NUL],
    ['%00 in a text', 'GET', '/send?id={ID}&text=a%00b', undef, undef, 400, $NUL],
    ['%00 in a room', 'GET', '/recv?since=0&room=lobby%00x', undef, undef, 400, $NUL],
    ['%00 in since', 'GET', '/recv?since=0%00', undef, undef, 400, $NUL],
    ['%00 in an id', 'GET', '/send?id=%00&text=x', undef, undef, 400, $NUL],
    ['%00 in a key', 'GET', '/join?%00=1&nick=nulkey', undef, undef, 400, $NUL],
    ['%00 hidden behind a bad escape', 'GET', '/send?id={ID}&text=%%00', undef,
     undef, 400, $NUL],
    ['a raw NUL in a POST body', 'POST', '/send', "id={ID}&text=a\0b", $FORM, 400,
     $NUL],
    ['a raw NUL in a POST key', 'POST', '/join', "ni\0ck=x", $FORM, 400, $NUL],
    ['a raw NUL in the query string', 'RAW',
     "GET /who?a=\0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", undef, undef,
     400, 'Bad request'],

    # Malformed percent escapes are kept as literal text.
    ['text %zz', 'GET', '/send?id={ID}&text=%zz', undef, undef, 200, \'%zz'],
    ['text %', 'GET', '/send?id={ID}&text=%', undef, undef, 200, \'%'],
    ['text %4', 'GET', '/send?id={ID}&text=%4', undef, undef, 200, \'%4'],
    ['text 100%', 'GET', '/send?id={ID}&text=100%', undef, undef, 200, \'100%'],
    ['text %u0041', 'GET', '/send?id={ID}&text=%u0041', undef, undef, 200, \'%u0041'],
    ['text %%41: one escape after a stray %', 'GET', '/send?id={ID}&text=%%41',
     undef, undef, 200, \'%A'],
    ['text %2541 is decoded once only', 'GET', '/send?id={ID}&text=%2541', undef,
     undef, 200, \'%41'],
    ['text %+1', 'GET', '/send?id={ID}&text=%+1', undef, undef, 200, \'% 1'],
    ['text %zz in a POST body', 'POST', '/send', 'id={ID}&text=%zz%', $FORM, 200,
     \'%zz%'],
    ['text with a plus and an escaped plus', 'GET', '/send?id={ID}&text=a+b%2Bc',
     undef, undef, 200, \'a b+c'],
    ['an overlong escape %0041 holds %00', 'GET', '/send?id={ID}&text=%0041',
     undef, undef, 400, $NUL],

    # Too large for nginx.
    ['a 1 MB query string', 'RAW',
     "GET /send?id={ID}&text=$mb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
     undef, undef, 414, 'Request too large'],
    ['a 1 MB form body', 'POST', '/send', "id={ID}&text=$mb", $FORM, 413,
     'Request too large'],
    ['a 1 MB body of another type', 'POST', '/send', $mb, 'text/plain', 413,
     'Request too large'],
    ['a body of 70 KB', 'POST', '/send', 'id={ID}&text=' . ('x' x 70_000), $FORM,
     413, 'Request too large'],
    ['a 20 KB header', 'RAW',
     "GET /who HTTP/1.1\r\nHost: x\r\nX-Big: " . ('h' x 20_000)
     . "\r\nConnection: close\r\n\r\n", undef, undef, 400, 'Bad request'],

    # Content types.
    ['POST text/plain', 'POST', '/send', 'id={ID}&text=plain', 'text/plain', 415, $CT],
    ['POST JSON', 'POST', '/join', '{"nick":"json"}', 'application/json', 415, $CT],
    ['POST multipart', 'POST', '/send', $multipart,
     'multipart/form-data; boundary=XyZ', 415, $CT],
    ['POST without a content type', 'RAW',
     "POST /join HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nConnection: close"
     . "\r\n\r\nnick=abc", undef, undef, 415, $CT],
    ['POST with a look-alike type', 'POST', '/join', 'nick=alike',
     "${FORM}x", 415, $CT],
    ['POST form with a charset', 'POST', '/send', 'id={ID}&text=charset',
     "$FORM; charset=UTF-8", 200, \'charset'],
    ['POST form in capitals', 'POST', '/send', 'id={ID}&text=capitals', uc $FORM,
     200, \'capitals'],
    ['POST form with an empty body', 'POST', '/join', '', $FORM, 400, 'Bad nick.'],
    ['GET with a body, which is ignored', 'GET', '/recv?since=0', 'since=abc',
     'text/plain', 200, undef],

    # Methods.
    ['PUT', 'PUT', '/send?id={ID}&text=put', 'id={ID}&text=put', $FORM, 405,
     'Method not allowed'],
    ['DELETE', 'DELETE', '/join?nick=delete', undef, undef, 405, 'Method not allowed'],
    ['PATCH', 'PATCH', '/who', 'x=1', $FORM, 405, 'Method not allowed'],
    ['OPTIONS', 'OPTIONS', '/recv?since=0', undef, undef, 405, 'Method not allowed'],
    ['a made-up method', 'FROBNICATE', '/who', undef, undef, 405,
     'Method not allowed'],
    ['TRACE (refused by nginx)', 'TRACE', '/who', undef, undef, 405,
     'Method not allowed'],
    ['POST /who', 'POST', '/who', 'room=lobby', $FORM, 405, 'Method not allowed'],
    ['POST /recv', 'POST', '/recv', 'since=0', $FORM, 405, 'Method not allowed'],
    ['HEAD /who', 'HEAD', '/who', undef, undef, 200, undef],
    ['HEAD on an unknown path', 'HEAD', '/nonsense', undef, undef, 404, undef],
    ['CONNECT', 'RAW', "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n"
     . "Connection: close\r\n\r\n", undef, undef, 400, 'Bad request'],
    ['a lower-case method', 'RAW', "get /who HTTP/1.1\r\nHost: x\r\n"
     . "Connection: close\r\n\r\n", undef, undef, 400, 'Bad request'],
    ['HTTP/2.0 spoken as text', 'RAW', "GET /who HTTP/2.0\r\nHost: x\r\n"
     . "Connection: close\r\n\r\n", undef, undef, 400, undef],
    ['an unknown transfer coding', 'RAW', "POST /join HTTP/1.1\r\nHost: x\r\n"
     . "Transfer-Encoding: gzip\r\nConnection: close\r\n\r\n", undef, undef, 400,
     undef],
    ['no Host header', 'RAW', "GET /who HTTP/1.1\r\nConnection: close\r\n\r\n",
     undef, undef, 400, 'Bad request'],
    ['two Content-Lengths', 'RAW', "POST /join HTTP/1.1\r\nHost: x\r\n"
     . "Content-Type: $FORM\r\nContent-Length: 3\r\nContent-Length: 8\r\n"
     . "Connection: close\r\n\r\nnick=two", undef, undef, 400, 'Bad request'],
    ['a chunked form body', 'RAW', "POST /join HTTP/1.1\r\nHost: x\r\n"
     . "Content-Type: $FORM\r\nTransfer-Encoding: chunked\r\n"
     . "Connection: close\r\n\r\n7\r\nnick=ch\r\n4\r\nunky\r\n0\r\n\r\n", undef,
     undef, 200, {nick => 'chunky'}],

    # Paths.
    ['an unknown path', 'GET', '/nonsense', undef, undef, 404, 'Not found'],
    ['a sub-path', 'GET', '/join/extra?nick=sub', undef, undef, 404, 'Not found'],
    ['a path in capitals', 'GET', '/JOIN?nick=caps', undef, undef, 404, 'Not found'],
    ['a path with a suffix', 'GET', '/who.json', undef, undef, 404, 'Not found'],
    ['a path with a trailing slash', 'GET', '/who/', undef, undef, 404, 'Not found'],
    ['an unknown POST path', 'POST', '/admin', 'x=1', $FORM, 404, 'Not found'],
    ['a known name under another directory', 'GET', '/anything/who', undef, undef,
     404, 'Not found'],
    ['recv under another directory', 'GET', '/static/recv?since=0', undef, undef,
     404, 'Not found'],
    ['a path escaping the root', 'RAW', "GET /../../etc/passwd HTTP/1.1\r\n"
     . "Host: x\r\nConnection: close\r\n\r\n", undef, undef, 400, 'Bad request'],

    # SQL, JSON and HTML in text: stored verbatim, tables intact.
    ['SQL in a text', 'GET',
     '/send?id={ID}&text=' . enc("'); DROP TABLE messages;--"), undef, undef, 200,
     \"'); DROP TABLE messages;--"],
    ['SQL in a POST text', 'POST', '/send',
     form(id => $id, text => "1' OR '1'='1"), $FORM, 200, \"1' OR '1'='1"],
    ['dollar quoting in a text', 'POST', '/send',
     form(id => $id, text => '$$; DROP TABLE sessions; $$'), $FORM, 200,
     \'$$; DROP TABLE sessions; $$'],
    ['a text that is NULL', 'GET', '/send?id={ID}&text=NULL', undef, undef, 200,
     \'NULL'],
    ['an array literal in a text', 'POST', '/send',
     form(id => $id, text => '"},{"x","y'), $FORM, 200, \'"},{"x","y'],
    ['backslashes and quotes', 'POST', '/send',
     form(id => $id, text => q{\"\\\\'\\}), $FORM, 200, \q{\"\\\\'\\}],
    ['JSON in a text', 'POST', '/send',
     form(id => $id, text => '{"messages":[],"error":"x","rss":1}'), $FORM,
     200, \'{"messages":[],"error":"x","rss":1}'],
    ['an escaped NUL spelled out', 'POST', '/send',
     form(id => $id, text => '\u0000 and \x00'), $FORM, 200,
     \'\u0000 and \x00'],
    ['HTML in a text', 'POST', '/send',
     form(id => $id, text => '<script>alert(1)</script>'), $FORM, 200,
     \'<script>alert(1)</script>'],
    ['HTML that closes a tag', 'POST', '/send',
     form(id => $id, text => '</textarea><img src=x onerror=alert(1)>'), $FORM,
     200, \'</textarea><img src=x onerror=alert(1)>'],
    ['control characters', 'POST', '/send',
     form(id => $id, text => "\x01\x1b[31mred\x7f\x08"), $FORM, 400,
     'Message has control characters'],
    ['a carriage return', 'POST', '/send', form(id => $id, text => "a\r\nb"),
     $FORM, 400, 'Message has control characters'],
    ['LF and tabs', 'POST', '/send', form(id => $id, text => "a\nb\tc"),
     $FORM, 200, \"a\nb\tc"],
    ['leading and trailing white space', 'POST', '/send',
     form(id => $id, text => "  padded\t "), $FORM, 200, \"  padded\t "],
    ['bidi override', 'POST', '/send',
     form(id => $id, text => "\xe2\x80\xaeevil"), $FORM, 400,
     'Message has control characters'],
    ['BOM and emoji', 'POST', '/send',
     form(id => $id, text => "evil\xef\xbb\xbf\xf0\x9f\x98\x80"),
     $FORM, 200, \"evil\xef\xbb\xbf\xf0\x9f\x98\x80"],
    ['a line separator', 'POST', '/send',
     form(id => $id, text => "evil\xe2\x80\xa8line"), $FORM, 400,
     'Message has control characters'],
    ['only invisible characters', 'POST', '/send',
     form(id => $id, text => "\xe2\x80\x8b\xef\xbb\xbf"), $FORM, 400, 'Empty message'],
    ['U+10FFFF and U+FFFF', 'GET', '/send?id={ID}&text=%F4%8F%BF%BF%EF%BF%BF',
     undef, undef, 200, \"\xf4\x8f\xbf\xbf\xef\xbf\xbf"],

    # Nicks and rooms.
    ['a nick with SQL', 'GET', '/join?nick=' . enc("Robert');DROP TABLE sessions;--"),
     undef, undef, 400, 'Bad nick.'],
    ['a nick with HTML', 'GET', '/join?nick=%3Cb%3Ex%3C%2Fb%3E', undef, undef, 400,
     'Bad nick.'],
    ['a nick with UTF-8', 'GET', '/join?nick=%C3%A9', undef, undef, 400, 'Bad nick.'],
    ['a nick with invalid UTF-8', 'GET', '/join?nick=%FF', undef, undef, 400,
     'Bad nick.'],
    ['a nick of 51 characters', 'GET', '/join?nick=' . ('n' x 51), undef, undef,
     400, 'Bad nick.'],
    ['a nick of 10000 characters', 'GET', "/join?nick=$long", undef, undef, 400,
     'Bad nick.'],
    ['a nick that looks like a comment', 'GET', '/join?nick=--', undef, undef, 200,
     {nick => '--'}],
    ['a nick that is null', 'GET', '/join?nick=null', undef, undef, 200,
     {nick => 'null'}],
    ['a room with SQL', 'GET', '/join?nick=x&room=' . enc("lobby';DROP TABLE rooms;--"),
     undef, undef, 400, 'Bad room.'],
    ['a room of 65 characters', 'GET', '/recv?since=0&room=' . ('r' x 65), undef,
     undef, 400, 'Bad room.'],
    ['a room of 10000 characters', 'GET', "/who?room=$long", undef, undef, 400,
     'Bad room.'],
    ['a room with invalid UTF-8', 'GET', '/who?room=%FF', undef, undef, 400,
     'Bad room.'],
    ['a room that is a path', 'GET', '/who?room=..%2Fetc', undef, undef, 400,
     'Bad room.'],

    # Session ids.
    ['send with a huge id', 'GET', '/send?text=x&id=' . ('a' x 5000), undef, undef,
     400, $NOID],
    ['send with id null', 'GET', '/send?id=null&text=x', undef, undef, 400, $NOID],
    ['send with id[]', 'GET', '/send?id[]={ID}&text=x', undef, undef, 400, $NOID],
    ['send with an array literal as id', 'POST', '/send',
     form(id => 'a","b', text => 'x'), $FORM, 400, $NOID],
    ['send with the id in capitals', 'GET', '/send?id={UCID}&text=x', undef, undef,
     400, $NOID],
    ['send with the id and more', 'GET', '/send?id={ID}00&text=x', undef, undef, 400,
     $NOID],
    ['send with a binary id', 'GET', '/send?id=%FF%FE%00%01&text=x', undef, undef,
     400, $NUL],
    ['send with an id of invalid UTF-8', 'GET', '/send?id=%FF%FE&text=x', undef,
     undef, 400, $NOID],
    ['send with 32 bytes of invalid UTF-8', 'GET',
     '/send?text=x&id=' . ('%C0' x 32), undef, undef, 400, $NOID],
    ['part with an id of invalid UTF-8', 'GET', '/part?id=%FF', undef, undef, 200,
     undef],
    ['part with an overlong NUL as id', 'POST', '/part', 'id=%C0%80', $FORM, 200,
     undef],
    ['part with a huge id', 'GET', '/part?id=' . ('b' x 5000), undef, undef, 200,
     undef],
    ['part with id null', 'GET', '/part?id=null', undef, undef, 200, undef],
    ['recv with id null', 'GET', '/recv?since=0&id=null', undef, undef, 200, undef],
    ['recv with id[]', 'GET', '/recv?since=0&id[]=x', undef, undef, 200, undef],
    ['recv with an id of invalid UTF-8', 'GET', '/recv?since=0&id=' . ('%FF' x 32),
     undef, undef, 200, undef],
);

# Sends one row's request; returns (status, lower-cased headers, body).
sub send_row {
    my ($method, $path, $body, $type) = @_;
    return raw_http($s->port, $path) if $method eq 'RAW';
    my %opt;
    $opt{content} = $body if defined $body;
    $opt{headers} = {'Content-Type' => $type} if defined $type;
    my $res = ($s->request($method, $path, \%opt))[3];
    return ($res->{status}, $res->{headers}, $res->{content});
}

# Checks one answer against its row; returns the list of what is wrong.
sub check_row {
    my ($method, $status, $want, $st, $h, $raw, $took) = @_;
    my @wrong;
    push @wrong, sprintf('took %.1f s', $took) if $took >= $HANG;
    push @wrong, "status $st, not $status" if $st != $status;
    push @wrong, "a 5xx (or no answer)" if !$st || $st >= 500;
    if ($st >= 400) {
        push @wrong, 'Content-Type ' . ($h->{'content-type'} // 'none')
            unless ($h->{'content-type'} // '') =~ m{^application/json};
        my $json = eval { $JSON->decode($raw) };
        push @wrong, 'the body is not {"error":"..."}'
            unless $method eq 'HEAD' || ($json && ref $json eq 'HASH'
                && keys %$json == 1 && defined $json->{error}
                && !ref $json->{error});
    }
    if (defined $want && !ref $want) {
        my $body = $JSON->encode({error => $want});
        push @wrong, "the body is not $body" if $raw ne $body;
    } elsif (ref $want eq 'HASH' && $st == 200) {
        my $json = eval { $JSON->decode($raw) } // {};
        for (sort keys %$want) {
            push @wrong, "$_ is " . ($json->{$_} // 'missing')
                if ($json->{$_} // '') ne $want->{$_};
        }
    }
    push @wrong, 'the body: ' . substr($raw // '', 0, 200) if @wrong;
    return @wrong;
}

# A send answered 200 in the lobby: is its text there, byte for byte?
sub check_stored {
    my ($want) = @_;
    my ($rs, $json) = $s->get("/recv?since=$head");
    my @all = @{$json->{messages} // []};
    $head = $all[-1]{timestamp} if @all;
    my @msgs = grep { $_->{type} eq 'msg' } @all;
    return ('recv answered ' . scalar(@msgs) . ' messages, not 1') if @msgs != 1;
    return ('sent by ' . $msgs[0]{nick}) if $msgs[0]{nick} ne 'honest';
    my $got = $msgs[0]{text} // '';
    utf8::encode($got);
    return () if $got eq $want;
    return ('stored ' . unpack('H*', substr($got, 0, 60)) . ', not '
            . unpack('H*', substr($want, 0, 60)));
}

my %seen;
for my $row (@rows) {
    my ($name, $method, $path, $body, $type, $status, $want) = @$row;
    die "two rows named '$name'" if $seen{$name}++;
    for ($path, $body) {
        next unless defined;
        s/\{ID\}/$id/g;
        s/\{UCID\}/\U$id/g;
    }
    my $t0 = time;
    my ($st, $h, $raw) = send_row($method, $path, $body, $type);
    my @wrong = check_row($method, $status, $want, $st, $h, $raw, time - $t0);
    if (ref $want eq 'SCALAR' && $st == 200) {
        push @accepted, ['lobby', 'honest', $$want];
        push @wrong, check_stored($$want);
    }
    $joins++ if ref $want eq 'HASH' && defined $want->{nick} && $st == 200;
    my $what = ref $want eq 'SCALAR' ? 'stored verbatim'
             : defined $want && !ref $want ? qq({"error":"$want"})
             : 'answered';
    ok(!@wrong, "$name: $status, $what") or diag(join "\n", @wrong);
}
cmp_ok(scalar @rows, '>=', 30, scalar(@rows) . ' hostile rows');

# The tables are intact and hold what they should.
is($s->sql(q{SELECT count(*) FROM pg_tables WHERE schemaname = 'public'
             AND tablename IN ('messages', 'sessions', 'rooms')}), 3,
   'the tables are all still there');
my ($st, $json) = $s->get('/who');
is($st, 200, 'the service still answers after the table');

# --- honest sends racing hostile ones (group commit) --------------------------
#
# Sends that arrive together are stored in one transaction. A send whose id
# PostgreSQL refuses to read must not take the honest ones down with it.
{
    my ($ok, $bad_5xx, $n) = (0, 0, 0);
    for my $round (1 .. 8) {
        my @good = map {
            my $text = "race $round.$_";
            [$text, $s->get_async("/send?id=$id&text=" . enc($text))]
        } 1 .. 6;
        my @bad = map { $s->get_async('/send?text=x&id=%FF%FE' . $_) } 1 .. 3;
        for (@good) {
            my ($text, $p) = @$_;
            my ($gst) = $p->wait;
            $n++;
            if ($gst == 200) {
                $ok++;
                push @accepted, ['lobby', 'honest', $text];
            }
        }
        for (@bad) {
            my ($bst) = $_->wait;
            $bad_5xx++ if $bst >= 500;
        }
    }
    diag("$ok of $n honest sends stored, $bad_5xx hostile ones got a 5xx")
        if $ok != $n || $bad_5xx;
    is($ok, $n, "all $n honest sends racing hostile ids were stored");
    is($bad_5xx, 0, 'and the hostile ids got 4xx, not 5xx');
}

# --- clients that stall half-way ----------------------------------------------
{
    my @stalled;
    for (1 .. 20) {
        # Headers that never end.
        push @stalled, stall($s->port, "GET /who HTTP/1.1\r\nHost: x\r\nX-Slow: 1");
        # A body that never ends: nothing of it may be stored.
        push @stalled, stall($s->port, "POST /send HTTP/1.1\r\nHost: x\r\n"
            . "Content-Type: $FORM\r\nContent-Length: 1000\r\n\r\n"
            . "id=$id&text=half");
        # A connection that says nothing at all.
        push @stalled, stall($s->port, '');
        # Half a request line.
        push @stalled, stall($s->port, 'GET /recv?since=0&r');
    }
    my ($served, $slowest) = (0, 0);
    for my $i (1 .. 15) {
        my $t0 = time;
        my @sts;
        push @sts, ($s->get('/who'))[0];
        push @sts, ($s->get("/send?id=$id&text=during+stall+$i"))[0];
        push @accepted, ['lobby', 'honest', "during stall $i"] if $sts[-1] == 200;
        push @sts, ($s->get('/recv?since=0'))[0];
        $slowest = time - $t0 if time - $t0 > $slowest;
        $served++ unless grep { $_ != 200 } @sts;
    }
    is($served, 15, 'the service keeps serving while 80 clients stall');
    cmp_ok($slowest, '<', 2, 'and stays fast (slowest round in seconds)');
    my $sel = IO::Select->new(@stalled);
    my @answered = grep { my $b = ''; sysread($_, $b, 1) } $sel->can_read(0);
    is(scalar @answered, 0, 'no stalled client got an answer to half a request');
    close $_ for @stalled;
    ($st) = $s->get('/who');
    is($st, 200, 'the service answers after the stalled clients left');
}

# --- the messages table holds exactly what was accepted -------------------------
{
    my @want = sort map { join ' ', $_->[0], $_->[1], unpack('H*', $_->[2]) }
        @accepted;
    my @got = sort split /\n/, $s->sql(q{SELECT room || ' ' || nick || ' ' ||
        encode(convert_to(text, 'UTF8'), 'hex') FROM messages WHERE type = 'msg'});
    is(scalar @got, scalar @want,
       scalar(@want) . ' messages accepted, as many stored');
    ok(join("\n", @got) eq join("\n", @want),
       'the stored messages are exactly the accepted ones, byte for byte');
    is($s->sql(q{SELECT count(*) FROM messages WHERE type = 'join'}), $joins,
       "$joins joins accepted, as many stored");
}
$s->finish;

# --- a second stack: short sessions, one worker ---------------------------------
#
# Quarantine (freed memory ASan keeps poisoned) would look like growth: keep
# it small so that the resident size says what the responder holds.
my $asan = join ':', grep { length } $ENV{ASAN_OPTIONS} // '',
    'quarantine_size_mb=8';
my $t = Stack->new(workers => 1, env => {
    RATE_LIMIT => 0, PGCHAT_SESSION_TIMEOUT => 2, PGCHAT_SWEEP_INTERVAL => 0.2,
    PGCHAT_RECV_TIMEOUT => 0.5, ASAN_OPTIONS => $asan,
});

# Hostile ids parked next to an honest poller must not keep the honest
# session from being marked active.
{
    my $steady = $t->join_nick('steady');
    my ($since, $t0) = (0, time);
    while (time - $t0 < 6) {
        my @bad = map {
            $t->get_async('/recv?since=99999999999999&id=' . ('%FF' x 32))
        } 1 .. 2;
        my ($rst, $rj) = $t->get("/recv?since=$since&id=$steady");
        $since = $rj->{messages}[-1]{timestamp}
            if $rst == 200 && @{$rj->{messages}};
        $_->wait for @bad;
    }
    my ($wst, $wj) = $t->get('/who');
    ok((grep { $_ eq 'steady' } @{$wj->{nicks} // []}),
       'an honest poller outlives hostile ids parked beside it');
    my $swept_at = $t->sql(q{SELECT min(ts) - (SELECT min(ts) FROM messages
        WHERE nick = 'steady') FROM messages
        WHERE type = 'part' AND nick = 'steady'});
    ok($swept_at eq '', 'and was never swept')
        or diag("swept ${swept_at} ms after joining, while polling");
}

# 1000 joins with distinct nicks in four rooms: all swept, memory flat.
{
    my $join_all = sub {
        my ($prefix, $n) = @_;
        my $ok = 0;
        for my $i (1 .. $n) {
            my ($jst) = $t->get("/join?nick=$prefix$i&room=load" . $i % 4);
            $ok++ if $jst == 200;
        }
        return $ok;
    };
    my $swept = sub {
        my $deadline = time + 20;
        while (time < $deadline) {
            return 1 if $t->sql(q{SELECT count(*) FROM sessions
                                  WHERE room LIKE 'load%'}) == 0;
            sleep 0.2;
        }
        return 0;
    };
    is($join_all->('warm', 300), 300, '300 joins to warm up');
    ok($swept->(), 'and they are swept');
    my $before = responder_rss($t);
    ok($before > 0, 'the responder\'s resident size can be read');

    my $t0 = time;
    is($join_all->('n', 1000), 1000, '1000 joins with distinct nicks accepted');
    diag(sprintf '1000 joins in %.1f s', time - $t0);
    my $max = $t->sql(q{SELECT count(*) FROM sessions WHERE room LIKE 'load%'});
    cmp_ok($max, '<=', 1000, "sessions are bounded ($max left after the joins)");
    ok($swept->(), 'every idle session is swept');
    is($t->sql(q{SELECT count(*) FROM messages WHERE type = 'part'
                 AND room LIKE 'load%' AND nick LIKE 'n%'}), 1000,
       'with one part message each');
    is($t->sql(q{SELECT count(DISTINCT nick) FROM messages WHERE type = 'part'
                 AND room LIKE 'load%' AND nick LIKE 'n%'}), 1000,
       'for 1000 distinct nicks');
    my ($wst, $wj) = $t->get('/who?room=load1');
    is_deeply($wj->{nicks}, [], 'the rooms are empty again');

    my $after = responder_rss($t);
    my $grew = ($after - $before) / 1024 / 1024;
    diag(sprintf 'responder RSS %.1f MB before, %.1f MB after (%+.1f MB)',
         $before / 1024 / 1024, $after / 1024 / 1024, $grew);
    cmp_ok($grew, '<', 20, 'the responder stays flat: less than 20 MB of growth');
}

# Out of descriptors: a responder limited to 48 and 60 readers parking.
# Connections it cannot accept wait in the socket's backlog; the server
# thread neither spins on the readable socket nor floods the log, and once
# the readers leave it serves again.
{
    my $f = Stack->new(workers => 1, nofile => 48);
    my $worker = ($f->worker_pids)[0];
    my $cpu = sub {
        open(my $fh, '<', "/proc/$worker/stat") or return 0;
        my @f = split ' ', (<$fh> =~ s/^.*\) //r);
        return ($f[11] + $f[12]) / POSIX::sysconf(POSIX::_SC_CLK_TCK());
    };
    my $swarm = Swarm->new($f->port, room => 'fd', readers => 60);
    $swarm->run_until(sub { $f->log('responder') =~ /cannot accept/ }, 20);
    my $cpu0 = $cpu->();
    my $t0 = time;
    $swarm->run_until(sub { 0 }, 3);
    my $used = $cpu->() - $cpu0;
    my $took = time - $t0;
    my $warnings = () = $f->log('responder') =~ /cannot accept: Too many open files/g;
    ok($warnings >= 1, 'the worker ran out of descriptors, and says so');
    ok($used < $took / 2, sprintf('without spinning: %.2f s of CPU in %.1f s', $used, $took));
    ok($warnings <= $took + 25, "nor flooding the log ($warnings warnings)");
    $swarm->close_all;
    my $ok = Stack::wait_until(60, sub { ($f->get('/who?room=fd'))[0] == 200 });
    ok($ok, 'once the readers left, it serves again');
    $f->finish;
}

($st) = $t->get('/who');
is($st, 200, 'the second stack still serves');
is($t->sql(q{SELECT count(*) FROM messages WHERE type = 'msg'}), 0,
   'and stored no message, since none was sent');
$t->finish;
done_testing;
