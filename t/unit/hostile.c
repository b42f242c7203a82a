/* hostile.c -- unit tests for hostile input, at the edges that t/fuzz and
 * t/70-hostile.t probe: malformed escapes and NUL bytes in the decoder, the
 * UTF-8 rule checked exhaustively against the Unicode standard's table, the
 * JSON and text[] escaping of every character, session ids against real
 * tokens, and the inputs the fuzzer stopped at (its regressions). */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "query.h"
#include "store.h"
#include "tap.h"
#include "testlib.h"
#include "token.h"
#include "valid.h"
#include "views.h"

/* --- the decoder --------------------------------------------------------- */

static const struct {
    const char *input, *key, *want, *name;
} decode[] = {
    {"text=%%41", "text", "%A", "a stray % before an escape"},
    {"text=%+1", "text", "% 1", "'+' after '%' is still a space"},
    {"text=%4", "text", "%4", "one hex digit is kept"},
    {"text=%u0041", "text", "%u0041", "%u escapes are not decoded"},
    {"text=%2541", "text", "%41", "decoded once only"},
    {"text=%2500", "text", "%00", "an escaped %00 is text, not NUL"},
    {"text=%%00", "text", "(refused)", "%00 after a stray %"},
    {"text=%0041", "text", "(refused)", "%0041 begins with %00"},
    {"text=%C0%80", "text", "\xc0\x80", "an overlong NUL is decoded..."},
    {"a=b=c", "a", "b=c", "the first '=' splits"},
    {"=v", "", "v", "an empty key"},
    {"a;b=1", "a;b", "1", "';' does not separate"},
    {"a;b=1", "b", NULL, "so there is no b"},
    {"+n+=+v+", " n ", " v ", "'+' in keys too"},
    {"&&&", "", NULL, "only separators"},
    {"id[]=x", "id", NULL, "id[] is not id"},
    {"text=a\r\nb", "text", "a\r\nb", "CR LF is kept"},
};

static void
test_decode(void)
{
    const char raw[] = "text=ok\0";
    struct query q;

    for (size_t i = 0; i < sizeof(decode) / sizeof(decode[0]); i++)
        is_str(decoded(decode[i].input, strlen(decode[i].input), decode[i].key),
               decode[i].want, "decode: %s", decode[i].name);
    ok(!valid_utf8("\xc0\x80", 2), "...and refused as text");
    is_str(decoded(raw, sizeof(raw) - 1, "text"), "(refused)",
           "decode: a raw NUL at the very end");
    is_str(decoded("text=%0", 7, "text"), "%0", "decode: %%0 at the very end");
    is_str(decoded("text=%00", 7, "text"), "%0",
           "decode: the length is respected (%%00 cut to %%0)");
    ok(query_parse(&q, "nick=a", 0) == 0 && !query_get(&q, "nick"),
       "decode: a length of 0 is an empty query");
    query_release(&q);
}

/* --- UTF-8, exhaustively ----------------------------------------------- */

static int
utf8_differs(const unsigned char *s, size_t len)
{
    return valid_utf8((const char *)s, len) != ref_utf8((const char *)s, len);
}

static void
test_utf8(void)
{
    static const unsigned char tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
                                          0x9f, 0xa0, 0xbf, 0xc0, 0xf5, 0xff};
    unsigned char s[4];
    long bad = 0, checked = 0;

    for (unsigned a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        bad += utf8_differs(s, 1);
        checked++;
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            bad += utf8_differs(s, 2);
            checked++;
            if (a < 0xe0)
                continue;
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (unsigned char)c;
                bad += utf8_differs(s, 3);
                checked++;
                if (a < 0xf0)
                    continue;
                for (size_t d = 0; d < sizeof(tails); d++) {
                    s[3] = tails[d];
                    bad += utf8_differs(s, 4);
                    checked++;
                }
            }
        }
    }
    is_int(bad, 0, "valid_utf8 agrees with the Unicode table on %ld inputs",
           checked);
}

/* --- JSON: every character round-trips ----------------------------------- */

static size_t
put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Serialises text as a message, parses it back strictly; 1 when the text
 * came back byte for byte and the body is UTF-8 with no raw control byte. */
static int
round_trips(const char *text, int64_t ts)
{
    struct msg m = {
        .ts = ts, .nick = "nick", .type = "msg", .text = (char *)text};
    struct msg_list list = {&m, 1, 0};
    size_t len;
    char *body = views_messages(&list, ts, 0, &len);
    json_tokener *tok = json_tokener_new();
    json_object *root, *arr, *o, *v, *t;
    int same = valid_utf8(body, len);

    for (size_t i = 0; i < len; i++)
        if ((unsigned char)body[i] < 0x20)
            same = 0;
    json_tokener_set_flags(tok,
                           JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    root = json_tokener_parse_ex(tok, body, (int)len);
    if (!root || !json_object_object_get_ex(root, "messages", &arr) ||
        !(o = json_object_array_get_idx(arr, 0)) ||
        !json_object_object_get_ex(o, "text", &v) ||
        !json_object_object_get_ex(o, "timestamp", &t))
        same = 0;
    else
        same = same && strcmp(json_object_get_string(v), text) == 0 &&
               (size_t)json_object_get_string_len(v) == strlen(text) &&
               json_object_get_int64(t) == ts;
    json_object_put(root);
    json_tokener_free(tok);
    free(body);
    return same;
}

static void
test_json(void)
{
    char *all = malloc(4 * 0x110000 + 1);
    size_t n = 0;
    int ascii = 1;

    for (unsigned c = 1; c < 0x80; c++) {
        char s[4] = {'a', (char)c, 'z', '\0'};

        if (!round_trips(s, c))
            ascii = 0;
    }
    ok(ascii, "JSON: every ASCII character round-trips");
    for (unsigned cp = 1; cp < 0x110000; cp++)
        if (cp < 0xd800 || cp > 0xdfff)
            n += put_utf8(all + n, cp);
    all[n] = '\0';
    ok(valid_utf8(all, n), "JSON: all of Unicode is valid UTF-8 (%zu bytes)",
       n);
    ok(round_trips(all, 1), "JSON: all of Unicode round-trips in one text");
    free(all);
    ok(round_trips("\"\\/\b\f\n\r\t\\u0000</script>", 2),
       "JSON: escapes and look-alikes round-trip");
    /* The fuzzer's first stop (t/fuzz): since=9223372036854775807 is a
     * cursor, and the largest timestamp must survive the JSON too. */
    ok(round_trips("x", INT64_MAX), "JSON: the largest timestamp round-trips");
}

/* --- text[] literals: PostgreSQL's reading of them -------------------------
 */

/* Reads element i of a literal as PostgreSQL does ("..." with backslash
 * escapes, or NULL); returns a new string, NULL for NULL, or "(bad)". */
static char *
element(const char *lit, size_t want)
{
    const char *p = lit + 1;
    char *out = malloc(strlen(lit) + 1);
    size_t o = 0;

    for (size_t i = 0;; i++) {
        if (strncmp(p, "NULL", 4) == 0) {
            p += 4;
            if (i == want) {
                free(out);
                return NULL;
            }
        } else if (*p++ == '"') {
            while (*p && *p != '"') {
                if (*p == '\\')
                    p++;
                if (i == want)
                    out[o++] = *p;
                p++;
            }
            if (*p++ != '"')
                break;
            if (i == want) {
                out[o] = '\0';
                return out;
            }
        } else {
            break;
        }
        if (*p++ != ',')
            break;
    }
    strcpy(out, "(bad)");
    return out;
}

static void
test_array_literal(void)
{
    const char *v[] = {
        "NULL", NULL,       "\"},{\"x", "\\",   "\\\"",
        "",     " padded ", "{a,b}",    "null", "'); DROP TABLE x;--"};
    size_t n = sizeof(v) / sizeof(v[0]);
    char *lit = store_array_literal(v, n);

    ok(strncmp(lit, "{\"NULL\",NULL,", 13) == 0,
       "text[]: a text NULL is quoted, a missing one is not");
    for (size_t i = 0; i < n; i++) {
        char *got = element(lit, i);

        if (v[i])
            is_str(got, v[i], "text[]: element %zu round-trips", i);
        else
            ok(!got, "text[]: element %zu is NULL", i);
        free(got);
    }
    free(lit);
}

/* --- session ids ------------------------------------------------------------
 */

static void
test_ids(void)
{
    int all = 1;

    is_int(VALID_ID_LEN, TOKEN_LEN, "an id is as long as a token");
    for (int i = 0; i < 1000; i++) {
        char *t = token_new();

        if (!t || !valid_id(t, strlen(t)))
            all = 0;
        free(t);
    }
    ok(all, "valid_id accepts 1000 fresh tokens");
}

/* --- cursors ---------------------------------------------------------------
 */

static void
test_since(void)
{
    int64_t v = -1;

    ok(valid_since("00000000000000000000000000001", &v) == 0 && v == 1,
       "since: leading zeros are not an overflow");
    ok(valid_since("09223372036854775807", &v) == 0 && v == INT64_MAX,
       "since: INT64_MAX with a leading zero");
    ok(valid_since("9223372036854775808", &v) == 0 && v == INT64_MAX,
       "since: INT64_MAX + 1 reads as INT64_MAX");
    ok(valid_since("-9223372036854775809", &v) == 0 && v == 0,
       "since: below INT64_MIN reads as 0");
    ok(valid_since("-0", &v) == 0 && v == 0, "since: -0 is 0");
    ok(valid_since("1.", &v) < 0, "since: a dot without digits");
    ok(valid_since(".5", &v) < 0, "since: a fraction alone");
    ok(valid_since("--1", &v) < 0, "since: two minus signs");
    ok(valid_since("1\xff", &v) < 0, "since: a byte above ASCII");
}

int
main(void)
{
    test_decode();
    test_utf8();
    test_json();
    test_array_literal();
    test_ids();
    test_since();
    return done_testing();
}
