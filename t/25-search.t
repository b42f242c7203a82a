#!/usr/bin/perl
# 25-search.t -- search: /search finds a room's messages by their words
# (websearch_to_tsquery: words, "quoted phrases", -word), newest first,
# from the GIN index of migration 0007; both sides of every limit; one
# room never sees another's.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Stack;
use Test::More;

my $s = Stack->new(workers => 2, env => {PGCHAT_RECV_TIMEOUT => 1});

sub error_is {
    my ($path, $status, $error, $name) = @_;
    my ($got, undef, $raw) = $s->get($path);
    is($got, $status, "$name: status $status");
    is($raw, qq({"error":"$error"}), "$name: error body");
}

sub q_ { my ($q) = @_; utf8::encode($q); $q =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge; $q }

sub texts {
    my ($room, $q, $extra) = @_;
    my ($st, $json) = $s->get("/search?room=$room&q=" . q_($q) . ($extra // ''));
    return $st == 200 ? [map { $_->{text} } @{$json->{messages}}] : "status $st";
}

# Sent in this order, so newest first is the reverse.
my @lib = ('the quick brown fox', 'a brown dog jumps', 'quick thinking',
           'the brown quick fox', 'Fox news about a FOX', 'naïve café talk');
my $id = $s->join_nick('carol', 'lib');
for my $i (0 .. $#lib) {
    my ($st) = $s->post('/send', {id => $id, room => 'lib', text => $lib[$i],
                                  ($i == 0 ? (mid => 's-1') : ())});
    is($st, 200, "send '$lib[$i]'");
}
my $other = $s->join_nick('dave', 'other');
$s->post('/send', {id => $other, room => 'other', text => 'the quick brown fox elsewhere'});

# --- the answer --------------------------------------------------------------
my ($st, $json, $raw) = $s->get('/search?room=lib&q=brown');
is($st, 200, 'search answers 200');
is_deeply([sort keys %$json], [qw(messages rss)], 'exact keys');
is_deeply([map { $_->{text} } @{$json->{messages}}],
          ['the brown quick fox', 'a brown dog jumps', 'the quick brown fox'],
          'a word: every message with it, newest first');
ok($json->{messages}[0]{timestamp} > $json->{messages}[1]{timestamp},
   '... timestamps descending');
is($json->{messages}[-1]{mid}, 's-1', 'a message sent with a mid carries it');
is($json->{messages}[0]{nick}, 'carol', 'the nick is there');
is($json->{messages}[0]{type}, 'msg', 'and the type');

# --- what websearch_to_tsquery understands ----------------------------------
my @cases = (
    ['"quick brown"',     ['the quick brown fox'],  'a quoted phrase keeps its order'],
    ['"brown quick"',     ['the brown quick fox'],  '... either way'],
    ['quick brown',       ['the brown quick fox', 'the quick brown fox'],
                                                    'two words: both, in any order'],
    ['brown -fox',        ['a brown dog jumps'],    '-word leaves out what has it'],
    ['fox -"quick brown"', ['Fox news about a FOX', 'the brown quick fox'],
                                                    '-"phrase" leaves out the phrase'],
    ['quick or dog',      ['the brown quick fox', 'quick thinking', 'a brown dog jumps',
                           'the quick brown fox'], 'or'],
    ['FOX',               ['Fox news about a FOX', 'the brown quick fox', 'the quick brown fox'],
                                                    'case does not matter'],
    ['café',              ['naïve café talk'],      'a word with an accent'],
    ['caf',               [],                       'no prefixes: a word is a word'],
    ['carol',             [],                       'nicks are not searched, nor joins'],
    ['elsewhere',         [],                       'another room\'s words are not found'],
    ['fox -"quick brown" or dog', ['Fox news about a FOX', 'the brown quick fox',
                           'a brown dog jumps'], 'or beside an exclusion'],
);
for my $c (@cases) {
    is_deeply(texts('lib', $c->[0]), $c->[1], "$c->[2] ($c->[0])");
}
# A query with no word a match must hold would read every message of the
# room to answer: refused before it reaches the database.
for my $q ('!!!', '& | ! ( ) : * <->', '@@@@ %%%% ####', '-fox', '-fox -"quick brown"', 'or',
           '-"quick') {
    error_is('/search?room=lib&q=' . q_($q), 400, 'Query needs a word to find',
             "nothing to find: $q");
}
unlike($s->log('responder'), qr/@@@@|lexemes/,
       'a query is never logged, not even in a notice about it');
is_deeply(texts('other', 'quick brown'), ['the quick brown fox elsewhere'],
          'the other room finds its own message only');
is_deeply(texts('nowhere', 'fox'), [], 'a room never written to finds nothing');
($st) = $s->get('/search?q=fox');
is($st, 200, 'without a room: the lobby');

# --- limits, both sides ------------------------------------------------------
$s->sql(q{SELECT chat_post('many', array_fill('filler'::text, ARRAY[60]),
                           array_fill('msg'::text, ARRAY[60]),
                           ARRAY(SELECT 'word number ' || i FROM generate_series(1, 60) i))});
($st, $json) = $s->get('/search?room=many&q=word');
is(scalar @{$json->{messages}}, 20, 'the default is 20 results');
is($json->{messages}[0]{text}, 'word number 60', '... the newest first');
($st, $json) = $s->get('/search?room=many&q=word&limit=1');
is_deeply([map { $_->{text} } @{$json->{messages}}], ['word number 60'], 'limit 1 is taken');
($st, $json) = $s->get('/search?room=many&q=word&limit=50');
is(scalar @{$json->{messages}}, 50, 'limit 50 is taken');
is($json->{messages}[49]{text}, 'word number 11', '... the newest 50');
error_is('/search?room=many&q=word&limit=51', 400, 'Bad limit', 'limit 51');
error_is('/search?room=many&q=word&limit=0', 400, 'Bad limit', 'limit 0');
error_is('/search?room=many&q=word&limit=-1', 400, 'Bad limit', 'a negative limit');
error_is('/search?room=many&q=word&limit=', 400, 'Bad limit', 'an empty limit');
error_is('/search?room=many&q=word&limit=ten', 400, 'Bad limit', 'a limit that is no number');

my $max = join ' ', ('fox') x 50;       # 199 characters
$max .= 'x';                            # 200
is(length $max, 200, 'a query of 200 characters...');
($st) = $s->get('/search?room=lib&q=' . q_($max));
is($st, 200, '... is taken');
error_is('/search?room=lib&q=' . q_("${max}x"), 400, 'Bad query', 'a query of 201 characters');
my $wide = 'é' x 200;                   # 400 bytes of UTF-8
($st) = $s->get('/search?room=lib&q=' . q_($wide));
is($st, 200, '200 two-byte characters are taken: characters are counted, not bytes');
error_is('/search?room=lib&q=' . q_("${wide}é"), 400, 'Bad query', '201 two-byte characters');
($st) = $s->get('/search?room=lib&q=a');
is($st, 200, 'a query of one character is taken');
error_is('/search?room=lib', 400, 'Bad query', 'no query');
error_is('/search?room=lib&q=', 400, 'Bad query', 'an empty query');
error_is('/search?room=lib&q=%20%20', 400, 'Bad query', 'a query of spaces');
error_is('/search?room=lib&q=%C3', 400, 'Bad query', 'a query that is not UTF-8');
error_is('/search?room=lib&q=a%1B', 400, 'Bad query', 'a query with a control character');
error_is('/search?room=bad%20room&q=fox', 400, 'Bad room.', 'a bad room');
($st) = $s->post('/search', {room => 'lib', q => 'fox'});
is($st, 405, 'search is GET only');

# --- the GIN index -----------------------------------------------------------
# The newest 1000 messages are filtered first; older ones come from the GIN
# index. So: 20,000 messages, a rare word in an old one and in a new one,
# and matches on both sides of the 1000th newest.
$s->sql(q{INSERT INTO messages (room, seq, ts, nick, type, text)
          SELECT 'big', i, i, 'filler', 'msg',
                 'common chatter number ' || i
                 || CASE WHEN i IN (10, 19000, 19001, 19999) THEN ' zebra' ELSE '' END
          FROM generate_series(1, 20000) i});
$s->sql('ANALYZE messages');
sub ts_of { my ($q, $limit) = @_;
    my ($st, $json) = $s->get("/search?room=big&q=$q&limit=$limit");
    return [map { $_->{timestamp} } @{$json->{messages}}] }
is_deeply(ts_of('zebra', 20), [19999, 19001, 19000, 10],
          'a word in new and old messages: all of them, newest first, none twice');
is_deeply(ts_of('zebra', 2), [19999, 19001], '... the newest two');
is_deeply(ts_of('zebra', 3), [19999, 19001, 19000],
          '... three: the 1000th newest and the one before it meet');
is_deeply(ts_of('number', 3), [20000, 19999, 19998], 'a word in every message: the newest');
is_deeply(ts_of('19000', 20), [19000], 'a word in one message older than the newest 1000');
is_deeply(ts_of('10', 20), [10], '... in the first message');
is_deeply(ts_of('zebra%20-10', 20), [19999, 19001, 19000], '-word in the older ones');
my $plan = $s->sql(q{EXPLAIN ANALYZE SELECT * FROM chat_search('big', '19000', 20)});
note($plan);
like($plan, qr/Bitmap Index Scan on messages_text_search\s+\(cost=[^)]*\)\s+\(actual [^)]*rows=1 /,
     'an older match comes from a scan of the GIN index on to_tsvector(\'simple\', text)');
unlike($plan, qr/Seq Scan/, '... with no sequential scan');
like($plan, qr/Index Scan Backward using messages_pkey[^\n]*\(actual[^)]*rows=1000 /,
     '... after the newest 1000 from the (room, ts) index, no more');
$plan = $s->sql(q{EXPLAIN SELECT * FROM chat_search('big', '"number 19000" -zebra', 20)});
like($plan, qr/Bitmap Index Scan on messages_text_search/, '... for a phrase and a -word too');
$plan = $s->sql(q{EXPLAIN ANALYZE SELECT * FROM chat_search('big', 'number', 20)});
like($plan, qr/Bitmap Heap Scan on messages \S+\s+\(cost=[^)]*\)\s+\(never executed\)/,
     'a word found 20 times in the newest 1000: the older ones are never read');
like($plan, qr/Index Scan Backward using messages_pkey[^\n]*\(actual[^)]*rows=20 /,
     '... and the newest are read only as far as the 20th match');
like($s->sql(q{SELECT indexdef FROM pg_indexes WHERE indexname = 'messages_text_search'}),
     qr/USING gin \(to_tsvector\('simple'::regconfig, text\)\)/,
     'the index is GIN on to_tsvector(\'simple\', text)');

$s->finish;
done_testing;
