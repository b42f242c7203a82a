/* fuzz_request.c -- a libFuzzer target for everything a request goes through
 * before it reaches the database, and for the JSON that leaves.
 *
 * The input is decoded as a query string (a C string, as QUERY_STRING comes)
 * and as a form body (with its length, NUL bytes and all), and the result is
 * compared with a reference decoder written here from the rules in query.c.
 * Every decoded value then goes through the protocol's rules (valid.c),
 * each compared with a reference implementation, and every value that is
 * well-formed UTF-8 through the views (views.c): the body must be valid
 * JSON in valid UTF-8 that json-c reads back to exactly the same bytes. The
 * text[] literal the store sends to PostgreSQL (store_array_literal) is read
 * back the way PostgreSQL reads it, too. And the input as a FastCGI byte
 * stream (wire.c): parsed whole and in two pieces, which must agree,
 * and its name-value pairs decoded.
 *
 * Any difference aborts, which libFuzzer reports as a crash. Built and run
 * by t/fuzz/run.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "msg.h"
#include "query.h"
#include "store.h"
#include "valid.h"
#include "views.h"

#include "testlib.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_request: %s:%d: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* --- the reference decoder ------------------------------------------------
 *
 * application/x-www-form-urlencoded as query.c documents it: '&' separates
 * pairs, empty pairs are skipped, the first '=' separates key and value, '+'
 * is a space, %XX (either case) is a byte, and any other '%' is kept as it
 * is. A pair without '=' has no value (query_get answers ""). */

struct ref_pair {
    char *key, *value; /* decoded, NUL-terminated; value NULL without '=' */
    size_t key_len, value_len;
};

struct ref {
    struct ref_pair *pairs;
    size_t n;
    int has_nul; /* some key or value decodes to a NUL byte */
};

static int
hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes (s, n) into a new string; *out_len gets its length. */
static char *
ref_decode(const char *s, size_t n, size_t *out_len, int *has_nul)
{
    char *out = malloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];

        if (c == '+') {
            out[o++] = ' ';
        } else if (c == '%' && i + 2 < n && hex(s[i + 1]) >= 0 &&
                   hex(s[i + 2]) >= 0) {
            out[o++] = (char)(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        } else {
            out[o++] = (char)c;
        }
        if (o && out[o - 1] == '\0')
            *has_nul = 1;
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

static void
ref_parse(struct ref *r, const char *s, size_t n)
{
    size_t start = 0;

    memset(r, 0, sizeof(*r));
    r->pairs = calloc(n / 2 + 1, sizeof(*r->pairs));
    for (size_t i = 0; i <= n; i++) {
        const char *item, *eq;
        size_t len;
        struct ref_pair *p;

        if (i < n && s[i] != '&')
            continue;
        item = s + start;
        len = i - start;
        start = i + 1;
        if (len == 0)
            continue;
        p = &r->pairs[r->n++];
        eq = memchr(item, '=', len);
        p->key = ref_decode(item, eq ? (size_t)(eq - item) : len, &p->key_len,
                            &r->has_nul);
        if (eq)
            p->value = ref_decode(eq + 1, len - (size_t)(eq - item) - 1,
                                  &p->value_len, &r->has_nul);
    }
}

static void
ref_free(struct ref *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->pairs[i].key);
        free(r->pairs[i].value);
    }
    free(r->pairs);
}

/* The reference answer to query_get(key): the first pair's value. */
static const struct ref_pair *
ref_get(const struct ref *r, const char *key, size_t key_len)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->pairs[i].key_len == key_len &&
            memcmp(r->pairs[i].key, key, key_len) == 0)
            return &r->pairs[i];
    return NULL;
}

/* --- reference rules --------------------------------------------------- */

static int
ref_charset(const char *s, size_t len, size_t max, const char *extra)
{
    if (len < 1 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || (c && strchr(extra, c))))
            return 0;
    }
    return 1;
}

static int
ref_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\n\r\v\f", s[i]) || s[i] == '\0')
            return 0;
    return 1;
}

/* One code point of well-formed UTF-8 at s[*i], decoded by its lead byte's
 * length (ref_utf8 has already checked the form). */
static unsigned int
ref_cp(const unsigned char *s, size_t *i)
{
    unsigned char c = s[*i];
    size_t n = c < 0x80 ? 0 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
    unsigned int cp = n == 0 ? c : c & (0x3f >> n);

    for (size_t k = 1; k <= n; k++)
        cp = (cp << 6) | (s[*i + k] & 0x3f);
    *i += n + 1;
    return cp;
}

/* The refused controls, as the README's table lists them: C0 but tab and
 * newline, DEL and C1, the Arabic letter mark, the line and paragraph
 * separators and the bidirectional embeddings and overrides (U+2028-202E),
 * the isolates (U+2066-2069), the tag characters (U+E0000-E007F), and a
 * second left-to-right or right-to-left mark. */
static int
ref_control(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    int marks = 0;

    while (i < len) {
        unsigned int cp = ref_cp(s, &i);

        if ((cp < 0x20 && cp != '\t' && cp != '\n') ||
            (cp >= 0x7f && cp <= 0x9f) || cp == 0x61c ||
            (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
            (cp >= 0xe0000 && cp <= 0xe007f))
            return 1;
        if ((cp == 0x200e || cp == 0x200f) && ++marks > 1)
            return 1;
    }
    return 0;
}

/* Whether some code point shows something: not white space, not a format
 * or filler character, not a variation selector (the README's list of what
 * a text may not consist of alone). */
static int
ref_visible(const char *str, size_t len)
{
    static const unsigned int invisible[] = {
        0x9,    0xa,     0xb,     0xc,     0xd,     0x20,   0xa0,   0xad,
        0x34f,  0x61c,   0x115f,  0x1160,  0x1680,  0x17b4, 0x17b5, 0x180b,
        0x180c, 0x180d,  0x180e,  0x180f,  0x2028,  0x2029, 0x202a, 0x202b,
        0x202c, 0x202d,  0x202e,  0x202f,  0x2800,  0x3000, 0x3164, 0xfeff,
        0xffa0, 0x1bca0, 0x1bca1, 0x1bca2, 0x1bca3,
    };
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned int cp = ref_cp(s, &i);
        int shows = 1;

        if ((cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x205f && cp <= 0x206f) ||
            (cp >= 0xfe00 && cp <= 0xfe0f) || (cp >= 0xfff0 && cp <= 0xfff8) ||
            (cp >= 0x1d173 && cp <= 0x1d17a) ||
            (cp >= 0xe0000 && cp <= 0xe0fff))
            shows = 0;
        for (size_t k = 0; shows && k < sizeof(invisible) / sizeof(*invisible);
             k++)
            if (cp == invisible[k])
                shows = 0;
        if (shows)
            return 1;
    }
    return 0;
}

static enum valid_text
ref_text(const char *s, size_t len, size_t max)
{
    if (!s || ref_blank(s, len))
        return VALID_TEXT_EMPTY;
    if (len > max)
        return VALID_TEXT_TOO_LONG;
    if (!ref_utf8(s, len))
        return VALID_TEXT_BAD_UTF8;
    if (ref_control(s, len))
        return VALID_TEXT_CONTROL;
    if (!ref_visible(s, len))
        return VALID_TEXT_EMPTY;
    return VALID_TEXT_OK;
}

/* -?[0-9]+(\.[0-9]+)?, negative as 0, beyond int64 as INT64_MAX. */
static int
ref_since(const char *s, int64_t *out)
{
    static const char max[] = "9223372036854775807";
    const char *p = s, *digits;
    size_t n;
    int negative = 0;

    if (!s)
        return -1;
    if (*p == '-')
        negative = 1, p++;
    digits = p;
    while (*p >= '0' && *p <= '9')
        p++;
    n = (size_t)(p - digits);
    if (n == 0)
        return -1;
    if (*p == '.') {
        const char *f = ++p;

        while (*p >= '0' && *p <= '9')
            p++;
        if (p == f)
            return -1;
    }
    if (*p != '\0')
        return -1;
    if (negative) {
        *out = 0;
        return 0;
    }
    while (n > 1 && *digits == '0')
        digits++, n--;
    if (n > sizeof(max) - 1 ||
        (n == sizeof(max) - 1 && strncmp(digits, max, n) > 0)) {
        *out = INT64_MAX;
        return 0;
    }
    *out = 0;
    for (size_t i = 0; i < n; i++)
        *out = *out * 10 + (digits[i] - '0');
    return 0;
}

/* --- JSON that leaves -------------------------------------------------- */

/* Parses a body the way a strict client does; aborts when it is not one
 * JSON object in valid UTF-8 with every control character escaped. */
static json_object *
parse_body(const char *body, size_t len)
{
    json_tokener *tok = json_tokener_new();
    json_object *root;

    CHECK(body && strlen(body) == len, "the length is not the string's");
    CHECK(valid_utf8(body, len), "the body is not UTF-8: %s", body);
    for (size_t i = 0; i < len; i++)
        CHECK((unsigned char)body[i] >= 0x20, "a raw control byte: %s", body);
    json_tokener_set_flags(tok,
                           JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    root = json_tokener_parse_ex(tok, body, (int)len);
    CHECK(root && json_tokener_get_error(tok) == json_tokener_success &&
              json_tokener_get_parse_end(tok) == len,
          "not JSON: %s", body);
    CHECK(json_object_is_type(root, json_type_object), "not an object");
    json_tokener_free(tok);
    return root;
}

static void
check_string(json_object *o, const char *key, const char *want, size_t want_len)
{
    json_object *v = NULL;

    CHECK(json_object_object_get_ex(o, key, &v), "no \"%s\"", key);
    CHECK(json_object_is_type(v, json_type_string), "\"%s\" not a string", key);
    CHECK((size_t)json_object_get_string_len(v) == want_len &&
              memcmp(json_object_get_string(v), want, want_len) == 0,
          "\"%s\" does not round-trip", key);
}

static void
check_int(json_object *o, const char *key, int64_t want)
{
    json_object *v = NULL;

    CHECK(json_object_object_get_ex(o, key, &v), "no \"%s\"", key);
    CHECK(json_object_is_type(v, json_type_int) &&
              json_object_get_int64(v) == want,
          "\"%s\" is not %lld", key, (long long)want);
}

/* s is well-formed UTF-8 without NUL: every view must carry it exactly. */
static void
check_views(const char *s, size_t len, int64_t ts)
{
    int64_t next = ts < INT64_MAX ? ts + 1 : ts;
    struct msg items[2] = {
        {.ts = ts, .nick = (char *)s, .type = "msg", .text = (char *)s},
        {.ts = next, .nick = (char *)s, .type = "join"},
    };
    struct msg_list list = {items, 2, (int)(ts & 1)};
    char *nicks[] = {(char *)s, "x"};
    json_object *root, *arr, *m;
    size_t blen;
    char *body;

    body = views_messages(&list, ts, (int)(ts & 2), &blen);
    root = parse_body(body, blen);
    CHECK(json_object_object_get_ex(root, "messages", &arr) &&
              json_object_is_type(arr, json_type_array) &&
              json_object_array_length(arr) == 2,
          "messages is not an array of 2: %s", body);
    m = json_object_array_get_idx(arr, 0);
    check_string(m, "text", s, len);
    check_string(m, "nick", s, len);
    check_string(m, "type", "msg", 3);
    check_int(m, "timestamp", ts);
    m = json_object_array_get_idx(arr, 1);
    CHECK(!json_object_object_get_ex(m, "text", NULL), "a join has a text");
    check_int(m, "timestamp", next);
    check_int(root, "rss", ts);
    CHECK(json_object_object_get_ex(root, "gap", NULL) == (int)(ts & 1),
          "gap is wrong: %s", body);
    CHECK(json_object_object_get_ex(root, "ping", NULL) == !!(ts & 2),
          "ping is wrong: %s", body);
    json_object_put(root);
    free(body);

    body = views_error(s, &blen);
    root = parse_body(body, blen);
    check_string(root, "error", s, len);
    CHECK(json_object_object_length(root) == 1, "an error has one key");
    json_object_put(root);
    free(body);

    body = views_join(s, s, ts, ts, 0, 0, &blen);
    root = parse_body(body, blen);
    check_string(root, "id", s, len);
    check_string(root, "nick", s, len);
    check_int(root, "starttime", ts);
    CHECK(json_object_object_length(root) == 4, "an anonymous join has 4 keys");
    json_object_put(root);
    free(body);

    body = views_join(s, s, ts, ts, 1, 300, &blen);
    root = parse_body(body, blen);
    check_string(root, "nick", s, len);
    check_int(root, "delete_window", 300);
    CHECK(json_object_object_length(root) == 6,
          "a moderator's join has 6 keys");
    json_object_put(root);
    free(body);

    body = views_who(nicks, 2, ts, &blen);
    root = parse_body(body, blen);
    CHECK(json_object_object_get_ex(root, "nicks", &arr) &&
              json_object_array_length(arr) == 2,
          "nicks is not an array of 2");
    CHECK((size_t)json_object_get_string_len(
              json_object_array_get_idx(arr, 0)) == len &&
              memcmp(json_object_get_string(json_object_array_get_idx(arr, 0)),
                     s, len) == 0,
          "a nick does not round-trip");
    json_object_put(root);
    free(body);
}

/* --- the text[] literal to PostgreSQL ----------------------------------
 *
 * Read back by PostgreSQL's rules for a quoted element: a backslash takes
 * the next character literally, a double quote ends it; an unquoted NULL is
 * the null value. */
static void
check_array_literal(const char *const *v, size_t n)
{
    char *lit = store_array_literal(v, n);
    const char *p = lit;

    CHECK(*p++ == '{', "a literal starts with {: %s", lit);
    for (size_t i = 0; i < n; i++) {
        if (i)
            CHECK(*p++ == ',', "elements are separated by ,: %s", lit);
        if (!v[i]) {
            CHECK(strncmp(p, "NULL", 4) == 0, "NULL stays NULL: %s", lit);
            p += 4;
            continue;
        }
        CHECK(*p++ == '"', "an element is quoted: %s", lit);
        for (const char *want = v[i]; *want; want++) {
            if (*p == '\\')
                p++;
            else
                CHECK(*p != '"', "an element ends early: %s", lit);
            CHECK(*p == *want, "element %zu does not round-trip: %s", i, lit);
            p++;
        }
        CHECK(*p++ == '"', "element %zu is longer: %s", i, lit);
    }
    CHECK(*p++ == '}' && *p == '\0', "a literal ends with }: %s", lit);
    free(lit);
}

/* --- one decoded value through every rule ------------------------------ */

/* views: also through every view (the slow part: json-c parses each). */
static void
check_value(const char *s, size_t len, size_t max, int views)
{
    int64_t a = -7, b = -7;
    int ra, rb;

    CHECK(strlen(s) == len, "a value holds a NUL byte");
    CHECK(valid_nick(s, len) == ref_charset(s, len, VALID_NICK_MAX, "_-^!"),
          "valid_nick disagrees on '%s'", s);
    CHECK(valid_room(s, len) == ref_charset(s, len, VALID_ROOM_MAX, "_-"),
          "valid_room disagrees on '%s'", s);
    CHECK(valid_mid(s, len) == ref_charset(s, len, VALID_MID_MAX, "_-"),
          "valid_mid disagrees on '%s'", s);
    CHECK(valid_utf8(s, len) == ref_utf8(s, len),
          "valid_utf8 disagrees on '%s'", s);
    CHECK(valid_blank(s, len) == ref_blank(s, len),
          "valid_blank disagrees on '%s'", s);
    CHECK(valid_text(s, len, max) == ref_text(s, len, max),
          "valid_text disagrees on '%s' (max %zu)", s, max);
    CHECK(valid_text(s, len, VALID_TEXT_MAX_DEFAULT) ==
              ref_text(s, len, VALID_TEXT_MAX_DEFAULT),
          "valid_text disagrees on '%s'", s);
    CHECK(valid_id(s, len) ==
              (len == VALID_ID_LEN && strspn(s, "0123456789abcdef") == len),
          "valid_id disagrees on '%s'", s);
    ra = valid_since(s, &a);
    rb = ref_since(s, &b);
    CHECK(ra == rb && (ra < 0 || a == b),
          "valid_since disagrees on '%s': %d %lld, want %d %lld", s, ra,
          (long long)a, rb, (long long)b);
    if (views && valid_utf8(s, len))
        check_views(s, len, ra == 0 ? a : (int64_t)len);
}

/* Parses (s, n) with query_parse and the reference; compares them. */
static void
check_query(const char *s, size_t n, size_t max)
{
    static const char *const names[] = {"nick",  "room", "text",
                                        "since", "id",   ""};
    struct query q;
    struct ref r;
    int rc = query_parse(&q, s, n);
    int want_refused;
    const char *v[8];
    size_t nv = 0;

    ref_parse(&r, s, n);
    want_refused = memchr(s, '\0', n) != NULL || r.has_nul;
    CHECK((rc < 0) == want_refused, "query_parse %s what has %s NUL",
          rc < 0 ? "refused" : "accepted", want_refused ? "a" : "no");
    if (rc == 0) {
        for (size_t i = 0; i < r.n; i++) {
            const struct ref_pair *first =
                ref_get(&r, r.pairs[i].key, r.pairs[i].key_len);
            const char *got = query_get(&q, r.pairs[i].key);
            const char *want = first->value ? first->value : "";
            size_t want_len = first->value ? first->value_len : 0;

            CHECK(got, "query_get lost the key '%s'", r.pairs[i].key);
            CHECK(strlen(got) == want_len && memcmp(got, want, want_len) == 0,
                  "query_get('%s') is '%s', not '%s'", r.pairs[i].key, got,
                  want);
            if (first == &r.pairs[i]) {
                check_value(got, strlen(got), max, 0);
                check_value(r.pairs[i].key, r.pairs[i].key_len, max, 0);
            }
        }
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            const char *got = query_get(&q, names[i]);

            CHECK(!got == !ref_get(&r, names[i], strlen(names[i])),
                  "query_get('%s') invents or loses a key", names[i]);
            if (got)
                check_value(got, strlen(got), max, 1);
            if (got && nv < 6)
                v[nv++] = got;
        }
        v[nv++] = NULL;
        v[nv++] = "";
        check_array_literal(v, nv);
    }
    query_release(&q);
    query_release(&q); /* twice is harmless */
    ref_free(&r);
}

/* --- FastCGI -------------------------------------------------------------- */

/* Parses data as a stream, cut at split: the records used, the status and
 * the request must not depend on how the bytes arrive. */
static enum wire_status
feed_split(struct wire_in *in, const char *data, size_t size, size_t split,
           size_t *used)
{
    enum wire_status st;
    size_t u1;
    char *rest;

    st = wire_feed(in, data, split, &u1);
    CHECK(u1 <= split, "used more than given");
    if (st != WIRE_MORE) {
        *used = u1;
        return st;
    }
    /* As server.c does: what was not used comes again, with more. */
    rest = malloc(size - u1 + 1);
    memcpy(rest, data + u1, size - u1);
    st = wire_feed(in, rest, size - u1, used);
    free(rest);
    *used += u1;
    return st;
}

static void
check_fastcgi(const char *data, size_t size, size_t split)
{
    struct wire_in a = {.max_body = 64}, b = {.max_body = 64};
    struct wire_params p;
    size_t ua, ub;
    enum wire_status sa = wire_feed(&a, data, size, &ua);
    enum wire_status sb = feed_split(&b, data, size, split % (size + 1), &ub);

    CHECK(sa == sb, "whole: %d, in two pieces: %d", sa, sb);
    if (sa == WIRE_READY && sb == WIRE_READY) {
        CHECK(ua == ub, "used %zu whole, %zu in pieces", ua, ub);
        /* Both are NULL when nothing came. */
        CHECK(a.plen == b.plen &&
                  (a.plen == 0 || memcmp(a.params, b.params, a.plen) == 0),
              "the parameters differ");
        CHECK(a.blen == b.blen && a.blen <= a.max_body &&
                  (a.blen == 0 || memcmp(a.body, b.body, a.blen) == 0) &&
                  a.body_over == b.body_over,
              "the bodies differ");
        if (wire_params_decode(&p, a.params, a.plen) == 0)
            for (size_t i = 0; i < p.n; i++)
                CHECK(wire_param(&p, p.names[i]) != NULL, "a name is lost");
        wire_params_release(&p);
    }
    wire_in_reset(&a);
    wire_in_reset(&b);
    /* The whole input as name-value pairs. */
    if (wire_params_decode(&p, data, size) == 0)
        CHECK(p.n <= size / 2, "%zu pairs from %zu bytes", p.n, size);
    wire_params_release(&p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t max = size ? 1 + data[0] % 16 : 1;
    char *body = malloc(size ? size : 1);
    char *buf = malloc(size + 1);

    /* Exactly the input's bytes, as a form body comes: in a block of its
     * own size, so that reading one byte too far is caught. */
    memcpy(body, data, size);
    check_query(body, size, max);
    free(body);

    /* A C string, as QUERY_STRING comes from the FastCGI parameters. */
    memcpy(buf, data, size);
    buf[size] = '\0';
    check_query(buf, strlen(buf), max);

    /* The whole input as one value. */
    if (strlen(buf) == size)
        check_value(buf, size, max, 1);
    free(buf);

    body = malloc(size ? size : 1);
    memcpy(body, data, size);
    check_fastcgi(body, size, size ? (size_t)data[size - 1] * 7 : 0);
    free(body);
    return 0;
}
