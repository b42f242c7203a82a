/* valid.c -- unit tests for the nick, room, text, UTF-8 and cursor rules,
 * both sides of every limit. */
#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "valid.h"

static const struct {
    const char *s;
    int want;
} nicks[] = {
    {"alice", 1}, {"A-b_c^d!9", 1}, {"", 0},     {"a b", 0},
    {"a.b", 0},   {"<img>", 0},     {"a\"b", 0}, {"é", 0},
    {"a%00", 0},  {"-", 1},         {"!!!", 1},  {"a/b", 0},
};

static const struct {
    const char *s;
    int want;
} rooms[] = {
    {"lobby", 1}, {"my-room_2", 1}, {"", 0}, {"a^b", 0}, {"a!", 0}, {"a b", 0},
};

static const struct {
    const char *s;
    int want;
    const char *name;
} utf8[] = {
    {"plain ascii", 1, "ASCII"},
    {"caf\xc3\xa9", 1, "two-byte sequence"},
    {"\xe2\x82\xac", 1, "three-byte sequence (euro sign)"},
    {"\xf0\x9f\x98\x80", 1, "four-byte sequence (emoji)"},
    {"\xf4\x8f\xbf\xbf", 1, "U+10FFFF, the last code point"},
    {"\xff", 0, "0xff is never UTF-8"},
    {"\xc3", 0, "truncated two-byte sequence"},
    {"\xe2\x82", 0, "truncated three-byte sequence"},
    {"\x80", 0, "lone continuation byte"},
    {"\xc0\xaf", 0, "overlong '/' (two bytes)"},
    {"\xe0\x80\xaf", 0, "overlong '/' (three bytes)"},
    {"\xf0\x80\x80\xaf", 0, "overlong '/' (four bytes)"},
    {"\xed\xa0\x80", 0, "UTF-16 surrogate U+D800"},
    {"\xf4\x90\x80\x80", 0, "U+110000, beyond Unicode"},
    {"\xc3\x28", 0, "bad continuation byte"},
};

static const struct {
    const char *s;
    int want;
    const char *name;
} ids[] = {
    {"0123456789abcdef0123456789abcdef", 1, "32 lower-case hex digits"},
    {"0123456789ABCDEF0123456789abcdef", 0, "capitals"},
    {"0123456789abcdef0123456789abcde", 0, "31 digits"},
    {"0123456789abcdef0123456789abcdef0", 0, "33 digits"},
    {"", 0, "empty"},
    {"null", 0, "null (the original client before joining)"},
    {"0123456789abcdef0123456789abcdeg", 0, "a g"},
    {"0123456789abcdef 123456789abcdef", 0, "a space"},
    {"\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe"
     "\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe",
     0, "32 bytes of invalid UTF-8 (PostgreSQL would refuse them)"},
    {"\xc0\x80\xc0\x80\xc0\x80\xc0\x80\xc0\x80\xc0\x80\xc0\x80\xc0\x80"
     "\xc0\x80\xc0\x80\xc0\x80\xc0\x80\xc0\x80\xc0\x80\xc0\x80\xc0\x80",
     0, "16 overlong NULs"},
    {"\"},{\"0123456789abcdef0123456789a", 0, "an array literal"},
};

static void
test_since(void)
{
    int64_t v = -1;

    ok(valid_since("0", &v) == 0 && v == 0, "since 0 is a cursor");
    ok(valid_since("1795755383445", &v) == 0 && v == 1795755383445LL,
       "a millisecond timestamp is read exactly");
    ok(valid_since("12.75", &v) == 0 && v == 12, "a fraction is dropped");
    ok(valid_since("-5", &v) == 0 && v == 0, "a negative cursor reads as 0");
    ok(valid_since("99999999999999999999999", &v) == 0 && v == INT64_MAX,
       "a cursor beyond int64 reads as the largest");
    ok(valid_since("9223372036854775807", &v) == 0 && v == INT64_MAX,
       "INT64_MAX itself is read");
    ok(valid_since(NULL, &v) < 0, "a missing since is refused");
    ok(valid_since("", &v) < 0, "an empty since is refused");
    ok(valid_since("abc", &v) < 0, "a word is refused");
    ok(valid_since("12abc", &v) < 0, "trailing garbage is refused");
    ok(valid_since("1e5", &v) < 0, "an exponent is refused");
    ok(valid_since("12.", &v) < 0, "a dot without digits is refused");
    ok(valid_since("-", &v) < 0, "a lone minus is refused");
    ok(valid_since(" 1", &v) < 0, "leading space is refused");
    ok(valid_since("null", &v) < 0, "null is refused");
}

/* Both sides of every refused range, and text that must pass. */
static const struct {
    const char *s;
    enum valid_text want;
    const char *name;
} controls[] = {
    {"a\x01z", VALID_TEXT_CONTROL, "U+0001, the first C0 control after NUL"},
    {"a\x07z", VALID_TEXT_CONTROL, "U+0007 BEL"},
    {"a\x08z", VALID_TEXT_CONTROL, "U+0008, just below tab"},
    {"a\tz", VALID_TEXT_OK, "U+0009 tab"},
    {"a\nz", VALID_TEXT_OK, "U+000A newline"},
    {"a\x0bz", VALID_TEXT_CONTROL, "U+000B, just above newline"},
    {"a\rz", VALID_TEXT_CONTROL, "U+000D carriage return"},
    {"a\x1b[31mred", VALID_TEXT_CONTROL, "U+001B ESC (a terminal colour)"},
    {"a\x1fz", VALID_TEXT_CONTROL, "U+001F, the last C0 control"},
    {"a z", VALID_TEXT_OK, "U+0020 space, just above C0"},
    {"a~z", VALID_TEXT_OK, "U+007E, just below DEL"},
    {"a\x7fz", VALID_TEXT_CONTROL, "U+007F DEL"},
    {"a\xc2\x80z", VALID_TEXT_CONTROL, "U+0080, the first C1 control"},
    {"a\xc2\x9bz", VALID_TEXT_CONTROL, "U+009B CSI"},
    {"a\xc2\x9fz", VALID_TEXT_CONTROL, "U+009F, the last C1 control"},
    {"a\xc2\xa0z", VALID_TEXT_OK, "U+00A0 no-break space, just above C1"},
    {"a\xe2\x80\xa7z", VALID_TEXT_OK, "U+2027, just below U+2028"},
    {"a\xe2\x80\xa8z", VALID_TEXT_CONTROL, "U+2028 LINE SEPARATOR"},
    {"a\xe2\x80\xa9z", VALID_TEXT_CONTROL, "U+2029 PARAGRAPH SEPARATOR"},
    {"a\xd8\x9bz", VALID_TEXT_OK, "U+061B, just below ALM"},
    {"a\xd8\x9cz", VALID_TEXT_CONTROL, "U+061C ARABIC LETTER MARK"},
    {"a\xd8\x9dz", VALID_TEXT_OK, "U+061D, just above ALM"},
    {"a\xf3\xa0\x80\x80z", VALID_TEXT_CONTROL, "U+E0000, the first tag"},
    {"a\xf3\xa0\x81\xbfz", VALID_TEXT_CONTROL, "U+E007F, the last tag"},
    {"a\xf3\xa0\x82\x80z", VALID_TEXT_OK,
     "U+E0080, just above the tags (invisible, but with a letter)"},
    {"\xe2\x80\x8e"
     "a\xe2\x80\x8e"
     "b",
     VALID_TEXT_CONTROL, "a second LRM"},
    {"\xe2\x80\x8e"
     "a\xe2\x80\x8f"
     "b",
     VALID_TEXT_CONTROL, "an LRM and an RLM"},
    {"\xe2\x80\x8b", VALID_TEXT_EMPTY, "only U+200B ZERO WIDTH SPACE"},
    {"\xe3\x85\xa4\xe3\x85\xa4", VALID_TEXT_EMPTY, "only U+3164 HANGUL FILLER"},
    {"\xc2\xa0 \xe3\x80\x80", VALID_TEXT_EMPTY,
     "only no-break and ideographic spaces"},
    {"\xe2\xa0\x80", VALID_TEXT_EMPTY, "only U+2800 BRAILLE BLANK"},
    {"\xef\xbb\xbf\xe2\x80\x8d", VALID_TEXT_EMPTY,
     "only a BOM and a zero width joiner"},
    {"\xe2\x80\x8f", VALID_TEXT_EMPTY, "only an RLM"},
    {"\xe2\x80\x8bx", VALID_TEXT_OK, "a zero width space and a letter"},
    {"\xe2\xa0\x81", VALID_TEXT_OK, "U+2801, a braille dot, shows"},
    {"a\xe2\x80\xaaz", VALID_TEXT_CONTROL, "U+202A LRE"},
    {"a\xe2\x80\xacz", VALID_TEXT_CONTROL, "U+202C PDF"},
    {"a\xe2\x80\xaez", VALID_TEXT_CONTROL, "U+202E RLO"},
    {"a\xe2\x80\xafz", VALID_TEXT_OK, "U+202F, just above U+202E"},
    {"a\xe2\x81\xa5z", VALID_TEXT_OK, "U+2065, just below U+2066"},
    {"a\xe2\x81\xa6z", VALID_TEXT_CONTROL, "U+2066 LRI"},
    {"a\xe2\x81\xa8z", VALID_TEXT_CONTROL, "U+2068 FSI"},
    {"a\xe2\x81\xa9z", VALID_TEXT_CONTROL, "U+2069 PDI"},
    {"a\xe2\x81\xaaz", VALID_TEXT_OK, "U+206A, just above U+2069"},
    {"caf\xc3\xa9 na\xc3\xafve \xc3\x85ngstr\xc3\xb6m", VALID_TEXT_OK,
     "accents"},
    {"\xf0\x9f\x98\x80 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", VALID_TEXT_OK,
     "emoji, with a skin tone"},
    {"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d abc", VALID_TEXT_OK,
     "right-to-left letters (Hebrew) without controls"},
    {"\xe2\x80\x8fx", VALID_TEXT_OK, "U+200F RLM, a mark, not an embedding"},
    {"\xe2\x80\xae", VALID_TEXT_CONTROL, "a lone U+202E"},
    {"ok\n\xe2\x81\xa9", VALID_TEXT_CONTROL, "a control at the very end"},
    {"\xe2\x80\xae\xff", VALID_TEXT_BAD_UTF8,
     "invalid UTF-8 is reported as such, controls or not"},
};

static void
test_controls(void)
{
    for (size_t i = 0; i < sizeof(controls) / sizeof(controls[0]); i++)
        is_int(valid_text(controls[i].s, strlen(controls[i].s), 4096),
               controls[i].want, "text: %s is %s", controls[i].name,
               controls[i].want == VALID_TEXT_OK ? "kept" : "refused");
    ok(valid_control(0x1b) && !valid_control('\t') && !valid_control('\n'),
       "valid_control: ESC refused, tab and newline kept");
    ok(!valid_control(0x1f600), "valid_control: an emoji is no control");
}

static void
test_text(void)
{
    char big[4098];

    memset(big, 'x', sizeof(big));
    is_int(valid_text(NULL, 0, 4096), VALID_TEXT_EMPTY,
           "a missing text is empty");
    is_int(valid_text("", 0, 4096), VALID_TEXT_EMPTY, "\"\" is empty");
    is_int(valid_text(" \t\n", 3, 4096), VALID_TEXT_EMPTY,
           "white space only is empty");
    is_int(valid_text(big, 4096, 4096), VALID_TEXT_OK,
           "4096 bytes are accepted");
    is_int(valid_text(big, 4097, 4096), VALID_TEXT_TOO_LONG,
           "4097 bytes are too long");
    is_int(valid_text("a\xff", 2, 4096), VALID_TEXT_BAD_UTF8,
           "invalid UTF-8 is refused");
    is_int(valid_text("a\0b", 3, 4096), VALID_TEXT_BAD_UTF8,
           "a NUL byte is refused");
    is_int(valid_text("line 1\nline 2", 13, 4096), VALID_TEXT_OK,
           "newlines are kept");
}

/* A search query: 1-200 code points, counted as characters, not bytes. */
static void
test_query(void)
{
    char q[4 * 201 + 1];

    memset(q, 'a', 200);
    is_int(valid_query(q, 200, 200), 1, "query: 200 characters are taken");
    memset(q, 'a', 201);
    is_int(valid_query(q, 201, 200), 0, "query: 201 characters are refused");
    for (int i = 0; i < 200; i++)
        memcpy(q + 2 * i, "\xc3\xa9", 2);
    is_int(valid_query(q, 400, 200), 1,
           "query: 200 two-byte characters (400 bytes) are taken");
    memcpy(q + 400, "\xc3\xa9", 2);
    is_int(valid_query(q, 402, 200), 0,
           "query: 201 two-byte characters are refused");
    is_int(valid_query("a", 1, 200), 1, "query: one character is taken");
    is_int(valid_query("", 0, 200), 0, "query: empty is refused");
    is_int(valid_query("  \t", 3, 200), 0,
           "query: only white space is refused");
    is_int(valid_query("\"a b\" -c", 8, 200), 1,
           "query: a phrase and a negation are taken");
    is_int(valid_query("\xc3", 1, 200), 0, "query: broken UTF-8 is refused");
    is_int(valid_query("a\x1b", 2, 200), 0,
           "query: a control character is refused");
}

/* A search must have a term to find: exclusions alone read everything. */
static const struct {
    const char *q;
    int want;
} finds[] = {
    {"aa", 1},        {"-aa", 0},
    {"-aa -bb", 0},   {"-\"aa bb\"", 0},
    {"\"aa bb\"", 1}, {"aa -bb", 1},
    {"-aa bb", 1},    {"or", 0},
    {"OR -aa", 0},    {"ore", 1},
    {"- aa", 1},      {"\"\"", 0},
    {"!!! ???", 0},   {"\xc3\xa9t\xc3\xa9", 1},
    {"aa or bb", 1},  {"-\"aa", 0},
};

static void
test_query_finds(void)
{
    for (size_t i = 0; i < sizeof(finds) / sizeof(finds[0]); i++)
        is_int(valid_query_finds(finds[i].q, strlen(finds[i].q)), finds[i].want,
               "query finds: %s", finds[i].q);
    is_int(valid_query("-aa", 3, 200), 1,
           "query: an exclusion alone is a query...");
    is_int(valid_query_finds("-aa", 3), 0, "... that finds no word");
}

int
main(void)
{
    char nick[52];

    for (size_t i = 0; i < sizeof(nicks) / sizeof(nicks[0]); i++)
        is_int(valid_nick(nicks[i].s, strlen(nicks[i].s)), nicks[i].want,
               "nick '%s' is %s", nicks[i].s,
               nicks[i].want ? "valid" : "refused");
    memset(nick, 'n', sizeof(nick));
    ok(valid_nick(nick, 50), "a nick of 50 characters is valid");
    ok(!valid_nick(nick, 51), "a nick of 51 characters is refused");
    ok(!valid_nick(NULL, 0), "a missing nick is refused");

    for (size_t i = 0; i < sizeof(rooms) / sizeof(rooms[0]); i++)
        is_int(valid_room(rooms[i].s, strlen(rooms[i].s)), rooms[i].want,
               "room '%s' is %s", rooms[i].s,
               rooms[i].want ? "valid" : "refused");
    ok(valid_room(nick, 50), "a room of 50 characters is valid");
    {
        char room[66];

        memset(room, 'r', sizeof(room));
        ok(valid_room(room, 64), "a room of 64 characters is valid");
        ok(!valid_room(room, 65), "a room of 65 characters is refused");
        ok(valid_mid(room, 1), "a mid of 1 character is valid");
        ok(valid_mid(room, 64), "a mid of 64 characters is valid");
        ok(!valid_mid(room, 65), "a mid of 65 characters is refused");
        ok(!valid_mid(room, 0), "an empty mid is refused");
        ok(valid_mid("Ab-9_z", 6),
           "a mid of letters, digits, - and _ is valid");
        ok(!valid_mid("a.b", 3), "a mid with a dot is refused");
        ok(!valid_mid("a b", 3), "a mid with a space is refused");
        ok(!valid_mid("\xc3\xa9", 2),
           "a mid with a non-ASCII letter is refused");
    }

    {
        int64_t v = -1;

        ok(valid_number("0", 0, 10, &v) == 0 && v == 0, "number: 0");
        ok(valid_number("200", 1, 200, &v) == 0 && v == 200,
           "number: the maximum is taken");
        ok(valid_number("201", 1, 200, &v) < 0, "number: one above is refused");
        ok(valid_number("1", 1, 200, &v) == 0 && v == 1,
           "number: the minimum is taken");
        ok(valid_number("0", 1, 200, &v) < 0, "number: one below is refused");
        ok(valid_number("999999999999999999", 0, INT64_MAX, &v) == 0 &&
               v == 999999999999999999LL,
           "number: 18 digits are taken");
        ok(valid_number("1000000000000000000", 0, INT64_MAX, &v) < 0,
           "number: 19 digits are refused");
        ok(valid_number("", 0, 10, &v) < 0, "number: empty is refused");
        ok(valid_number(NULL, 0, 10, &v) < 0, "number: missing is refused");
        ok(valid_number("-1", 0, 10, &v) < 0, "number: a sign is refused");
        ok(valid_number("1.5", 0, 10, &v) < 0, "number: a fraction is refused");
        ok(valid_number("1x", 0, 10, &v) < 0, "number: a suffix is refused");
        ok(valid_number(" 1", 0, 10, &v) < 0, "number: a space is refused");
    }

    for (size_t i = 0; i < sizeof(utf8) / sizeof(utf8[0]); i++)
        is_int(valid_utf8(utf8[i].s, strlen(utf8[i].s)), utf8[i].want,
               "UTF-8: %s", utf8[i].name);

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        is_int(valid_id(ids[i].s, strlen(ids[i].s)), ids[i].want, "id: %s",
               ids[i].name);
    ok(!valid_id(NULL, 0), "id: missing");
    ok(!valid_id("0123456789abcdef\0"
                 "123456789abcdef",
                 32),
       "id: a NUL byte inside");

    test_query();
    test_query_finds();
    test_since();
    test_text();
    test_controls();
    return done_testing();
}
