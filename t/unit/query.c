/* query.c -- unit tests for query strings and form bodies. */
#include <string.h>

#include "query.h"
#include "tap.h"
#include "testlib.h"

static const struct {
    const char *input, *key, *want, *name;
} cases[] = {
    {"nick=alice", "nick", "alice", "a plain value"},
    {"a=1&nick=bob&c=3", "nick", "bob", "a value among others"},
    {"text=hello+world", "text", "hello world", "'+' decodes to a space"},
    {"text=a%2Bb", "text", "a+b", "%2B decodes to '+'"},
    {"text=caf%C3%A9", "text", "caf\xc3\xa9", "percent-encoded UTF-8"},
    {"text=%zz", "text", "%zz", "a malformed escape is kept literally"},
    {"text=100%", "text", "100%", "a trailing '%' is kept"},
    {"nick=a&nick=b", "nick", "a", "the first of duplicates wins"},
    {"nick=", "nick", "", "an empty value"},
    {"nick", "nick", "", "a key without '='"},
    {"other=1", "nick", NULL, "an absent key"},
    {"", "nick", NULL, "an empty string"},
    {"text=a%00b", "text", "(refused)", "%00 is refused, not cut"},
    {"text=%3D%26", "text", "=&", "escaped separators"},
    {"a=1&&b=2", "b", "2", "an empty pair is skipped"},
    {"%6Eick=x", "nick", "x", "an escaped key"},
};

int
main(void)
{
    struct query q;
    const char raw_nul[] = "nick=a\0b";

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        is_str(decoded(cases[i].input, strlen(cases[i].input), cases[i].key),
               cases[i].want, "%s", cases[i].name);
    ok(query_parse(&q, raw_nul, sizeof(raw_nul) - 1) < 0,
       "a raw NUL byte is refused");
    query_release(&q);
    ok(q.list == NULL && query_get(&q, "nick") == NULL,
       "a released query holds nothing and finds nothing");
    query_release(&q); /* a double free here is a sanitizer report */
    ok(q.list == NULL, "releasing twice is harmless");
    return done_testing();
}
