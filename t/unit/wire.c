/* wire.c -- unit tests for the FastCGI wire format: requests as nginx
 * sends them (whole, byte by byte, padded), protocol errors, refusals of a
 * second request and of other roles, aborts, management records, and the
 * records of a reply.
 */
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "tap.h"

/* A growing byte string to build input in. */
struct bytes {
    unsigned char b[300000];
    size_t n;
};

static void
record(struct bytes *s, int type, int id, const void *content, size_t len,
       int pad)
{
    unsigned char *h = s->b + s->n;

    h[0] = 1;
    h[1] = (unsigned char)type;
    h[2] = (unsigned char)(id >> 8);
    h[3] = (unsigned char)id;
    h[4] = (unsigned char)(len >> 8);
    h[5] = (unsigned char)len;
    h[6] = (unsigned char)pad;
    h[7] = 0;
    memcpy(h + 8, content, len);
    memset(h + 8 + len, 0xAA, (size_t)pad);
    s->n += 8 + len + (size_t)pad;
}

static size_t
pair(unsigned char *p, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value), n = 0;

    p[n++] = (unsigned char)nl;
    if (vl < 128) {
        p[n++] = (unsigned char)vl;
    } else {
        p[n++] = (unsigned char)(0x80 | (vl >> 24));
        p[n++] = (unsigned char)(vl >> 16);
        p[n++] = (unsigned char)(vl >> 8);
        p[n++] = (unsigned char)vl;
    }
    memcpy(p + n, name, nl);
    memcpy(p + n + nl, value, vl);
    return n + nl + vl;
}

static char long_value[300];

/* A request as nginx sends it: BEGIN_REQUEST, PARAMS, STDIN. */
static void
request(struct bytes *s, int id, int keep, const char *body, int pad)
{
    unsigned char begin[8] = {0, 1, (unsigned char)keep, 0, 0, 0, 0, 0};
    unsigned char params[1024];
    size_t n = 0;

    n += pair(params + n, "REQUEST_METHOD", "POST");
    n += pair(params + n, "DOCUMENT_URI", "/send");
    n += pair(params + n, "QUERY_STRING", "");
    n += pair(params + n, "HTTP_X_LONG", long_value);
    record(s, 1, id, begin, sizeof(begin), 0);
    record(s, 4, id, params, n, pad);
    record(s, 4, id, "", 0, 0);
    if (*body)
        record(s, 5, id, body, strlen(body), pad);
    record(s, 5, id, "", 0, 0);
}

static void
check_request(struct wire_in *in, const char *body, const char *how)
{
    struct wire_params p;

    is_int(in->id, 1, "%s: the request id", how);
    is_int(in->keep, 1, "%s: KEEP_CONN", how);
    is_int(in->blen, strlen(body), "%s: the body's length", how);
    ok(in->blen == 0 || memcmp(in->body, body, in->blen) == 0, "%s: the body",
       how);
    ok(wire_params_decode(&p, in->params, in->plen) == 0,
       "%s: the parameters decode", how);
    is_int(p.n, 4, "%s: four parameters", how);
    is_str(wire_param(&p, "REQUEST_METHOD"), "POST", "%s: a parameter", how);
    is_str(wire_param(&p, "QUERY_STRING"), "", "%s: an empty one", how);
    is_str(wire_param(&p, "HTTP_X_LONG"), long_value,
           "%s: one with a four-byte length", how);
    ok(wire_param(&p, "CONTENT_TYPE") == NULL, "%s: an absent one", how);
    wire_params_release(&p);
}

static struct bytes in_bytes, out_bytes;

/* Feeds s one byte more at a time, as a slow socket would, keeping what
 * wire_feed() did not use. Returns the status of the last call. */
static enum wire_status
trickle(struct wire_in *in, const struct bytes *s, size_t *calls_ready)
{
    static unsigned char pending[300000];
    size_t have = 0;
    enum wire_status st = WIRE_MORE;

    *calls_ready = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t used;

        pending[have++] = s->b[i];
        st = wire_feed(in, (const char *)pending, have, &used);
        memmove(pending, pending + used, have - used);
        have -= used;
        if (st != WIRE_MORE) {
            *calls_ready = i + 1;
            return st;
        }
    }
    return st;
}

static enum wire_status
feed_all(struct wire_in *in, const struct bytes *s)
{
    size_t used;

    return wire_feed(in, (const char *)s->b, s->n, &used);
}

static void
test_requests(void)
{
    struct wire_in in = {.max_body = 64};
    size_t used, at;

    memset(long_value, 'v', sizeof(long_value) - 1);
    request(&in_bytes, 1, 1, "id=1&text=hi", 0);
    is_int(wire_feed(&in, (const char *)in_bytes.b, in_bytes.n, &used),
           WIRE_READY, "a whole request is READY");
    is_int(used, in_bytes.n, "every byte of it was used");
    check_request(&in, "id=1&text=hi", "whole");
    wire_in_reset(&in);
    is_int(in.max_body, 64, "reset keeps the body's cap");

    is_int(trickle(&in, &in_bytes, &at), WIRE_READY,
           "byte by byte, it is READY");
    is_int(at, in_bytes.n, "at its very last byte");
    check_request(&in, "id=1&text=hi", "byte by byte");
    wire_in_reset(&in);

    in_bytes.n = 0;
    request(&in_bytes, 1, 1, "", 7);
    is_int(feed_all(&in, &in_bytes), WIRE_READY, "padded records");
    check_request(&in, "", "padded, no body");
    wire_in_reset(&in);

    /* Two requests back to back: the first is READY with the second's
     * bytes unused. */
    in_bytes.n = 0;
    request(&in_bytes, 1, 1, "a=1", 0);
    at = in_bytes.n;
    request(&in_bytes, 1, 1, "b=2", 0);
    is_int(wire_feed(&in, (const char *)in_bytes.b, in_bytes.n, &used),
           WIRE_READY, "two requests: the first is READY");
    is_int(used, at, "and the second's bytes are left");
    wire_in_reset(&in);

    /* No parameters at all, and no body: nothing was allocated. */
    in_bytes.n = 0;
    {
        unsigned char begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};
        struct wire_params p;

        record(&in_bytes, 1, 1, begin, sizeof(begin), 0);
        record(&in_bytes, 4, 1, "", 0, 0);
        record(&in_bytes, 5, 1, "", 0, 0);
        is_int(feed_all(&in, &in_bytes), WIRE_READY,
               "a request without parameters");
        ok(in.params == NULL && in.plen == 0 && in.keep == 0,
           "has none, and no KEEP_CONN");
        ok(wire_params_decode(&p, in.params, in.plen) == 0 && p.n == 0 &&
               wire_param(&p, "REQUEST_METHOD") == NULL,
           "decodes to nothing");
        wire_params_release(&p);
        wire_in_reset(&in);
    }

    /* A body above the cap is read on, and dropped. */
    in_bytes.n = 0;
    {
        char big[200];

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        request(&in_bytes, 1, 1, big, 0);
    }
    is_int(feed_all(&in, &in_bytes), WIRE_READY, "an oversized body");
    ok(in.body_over && in.blen == 0, "is flagged and not kept");
    wire_in_reset(&in);
}

static void
test_errors(void)
{
    /* Each case is one record, after a valid BEGIN_REQUEST when begun. */
    static const unsigned char begin[] = {1, 1, 0, 1, 0, 8, 0, 0,
                                          0, 1, 0, 0, 0, 0, 0, 0};
    static const struct {
        int begun;
        unsigned char b[16];
        size_t n;
        const char *name;
    } bad[] = {
        {0, {2, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 16, "version 2"},
        {0, {1, 1, 0, 1, 0, 2, 0, 0, 0, 1}, 10, "a short BEGIN_REQUEST"},
        {1,
         {1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
         16,
         "BEGIN_REQUEST again for the same id"},
        {1, {1, 5, 0, 1, 0, 0, 0, 0}, 8, "STDIN before the parameters ended"},
        {1, {1, 6, 0, 1, 0, 0, 0, 0}, 8, "STDOUT, an application's record"},
        {1, {1, 42, 0, 1, 0, 0, 0, 0}, 8, "a record type nobody knows"},
    };
    static const unsigned char bad_pairs[][8] = {
        {5, 1, 'a', 'b'}, /* a name longer than what is there */
        {0x80, 0, 0},     /* a four-byte length cut short */
        {1},              /* a name length without a value length */
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct wire_in in = {.max_body = 64};
        unsigned char b[sizeof(begin) + sizeof(bad[i].b)];
        size_t n = 0, used;

        if (bad[i].begun) {
            memcpy(b, begin, sizeof(begin));
            n = sizeof(begin);
        }
        memcpy(b + n, bad[i].b, bad[i].n);
        n += bad[i].n;
        is_int(wire_feed(&in, (const char *)b, n, &used), WIRE_ERROR,
               "error: %s", bad[i].name);
        wire_in_reset(&in);
    }
    for (size_t i = 0; i < sizeof(bad_pairs) / sizeof(bad_pairs[0]); i++) {
        struct wire_params p;
        size_t n = i == 0 ? 4 : i == 1 ? 3 : 1;

        ok(wire_params_decode(&p, (const char *)bad_pairs[i], n) < 0 &&
               p.n == 0,
           "malformed name-value pairs %zu are refused", i + 1);
        wire_params_release(&p);
    }
}

static void
test_management(void)
{
    struct wire_in in = {.max_body = 64};
    struct bytes s = {.n = 0};
    unsigned char q[64];
    size_t n = pair(q, "FCGI_MPXS_CONNS", ""), used;
    static const char want[] = "\1\12\0\0\0\22\0\0\17\1FCGI_MPXS_CONNS0"
                               "\1\13\0\0\0\10\0\0\77\0\0\0\0\0\0\0";

    record(&s, 9, 0, q, n, 0);   /* GET_VALUES */
    record(&s, 63, 0, "", 0, 0); /* a type nobody knows */
    is_int(wire_feed(&in, (const char *)s.b, s.n, &used), WIRE_MORE,
           "management records need no request");
    is_int(used, s.n, "and are used up");
    is_int(in.olen, sizeof(want) - 1, "two replies to send");
    ok(in.olen == sizeof(want) - 1 && memcmp(in.out, want, in.olen) == 0,
       "GET_VALUES_RESULT says no multiplexing; UNKNOWN_TYPE names 63");
    wire_in_reset(&in);
}

/* Whether in->out holds exactly one END_REQUEST for id with status. */
static int
owes_end(const struct wire_in *in, int id, int status)
{
    const unsigned char *o = (const unsigned char *)in->out;

    return in->olen == 16 && o[0] == 1 && o[1] == 3 && o[2] == (id >> 8) &&
           o[3] == (id & 0xff) && o[5] == 8 && o[8 + 4] == status;
}

static void
test_refusals(void)
{
    struct wire_in in = {.max_body = 64};
    struct bytes s = {.n = 0};
    unsigned char authorizer[8] = {0, 2, 1, 0, 0, 0, 0, 0};
    size_t used, first;

    /* Another role: refused, and its records ignored. */
    record(&s, 1, 3, authorizer, sizeof(authorizer), 0);
    record(&s, 4, 3, "", 0, 0);
    record(&s, 5, 3, "", 0, 0);
    is_int(feed_all(&in, &s), WIRE_MORE, "the authorizer role is no request");
    ok(owes_end(&in, 3, 3), "it is refused with END_REQUEST/UNKNOWN_ROLE");
    ok(in.id == 0 && in.busy == 0, "and nothing is active");
    wire_in_reset(&in);

    /* A second request while the first is out for an answer. */
    s.n = 0;
    request(&s, 1, 1, "", 0);
    first = s.n;
    request(&s, 2, 1, "", 0);
    is_int(wire_feed(&in, (const char *)s.b, s.n, &used), WIRE_READY,
           "the first request is READY");
    is_int(in.busy, 1, "and busy");
    wire_in_next(&in);
    is_int(wire_feed(&in, (const char *)s.b + first, s.n - first, &used),
           WIRE_MORE, "a second one while it is busy is not READY");
    ok(owes_end(&in, 2, 1), "it is refused with END_REQUEST/CANT_MPX_CONN");
    is_int(used, s.n - first, "its records are read and ignored");
    wire_done(&in);
    in.olen = 0;
    s.n = 0;
    request(&s, 2, 1, "", 0);
    is_int(feed_all(&in, &s), WIRE_READY,
           "once the first is answered, the next one is read");
    wire_in_reset(&in);

    /* Records of a request that never began are ignored. */
    s.n = 0;
    record(&s, 4, 9, "", 0, 0);
    record(&s, 5, 9, "x", 1, 0);
    is_int(feed_all(&in, &s), WIRE_MORE, "records of an inactive id");
    is_int(in.olen, 0, "are ignored without a reply");
    wire_in_reset(&in);
}

static void
test_aborts(void)
{
    struct wire_in in = {.max_body = 64};
    struct bytes s = {.n = 0};
    unsigned char begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};
    size_t used;

    /* Aborted while being read, without KEEP_CONN. */
    record(&s, 1, 5, begin, sizeof(begin), 0);
    record(&s, 4, 5, "\1\1ab", 4, 0);
    record(&s, 2, 5, "", 0, 0);
    record(&s, 5, 5, "", 0, 0);
    is_int(feed_all(&in, &s), WIRE_MORE,
           "ABORT_REQUEST while a request is read ends it");
    ok(owes_end(&in, 5, 0), "with END_REQUEST/REQUEST_COMPLETE");
    ok(in.id == 0 && in.params == NULL && in.close_after,
       "its parameters are gone, and the connection is to close");
    wire_in_reset(&in);

    /* Aborted once handed on: the caller's to end. */
    s.n = 0;
    request(&s, 7, 1, "", 0);
    is_int(feed_all(&in, &s), WIRE_READY, "a request is READY");
    wire_in_next(&in);
    s.n = 0;
    record(&s, 2, 7, "", 0, 0);
    is_int(wire_feed(&in, (const char *)s.b, s.n, &used), WIRE_ABORT,
           "ABORT_REQUEST of the busy request is WIRE_ABORT");
    is_int(used, s.n, "the record is used");
    wire_end(&in, in.busy, 0);
    ok(owes_end(&in, 7, 0), "wire_end owes its END_REQUEST");
    wire_done(&in);
    is_int(in.busy, 0, "and wire_done frees the connection for the next");
    s.n = 0;
    record(&s, 2, 8, "", 0, 0);
    in.olen = 0;
    is_int(feed_all(&in, &s), WIRE_MORE,
           "ABORT_REQUEST of an inactive id is ignored");
    is_int(in.olen, 0, "without a reply");
    wire_in_reset(&in);
}

/* Concatenates the iovecs of a reply into out_bytes. */
static void
flatten(const struct iovec *iov, int n)
{
    out_bytes.n = 0;
    for (int i = 0; i < n; i++) {
        memcpy(out_bytes.b + out_bytes.n, iov[i].iov_base, iov[i].iov_len);
        out_bytes.n += iov[i].iov_len;
    }
}

static void
test_replies(void)
{
    static const char head[] = "Status: 200 OK\r\n\r\n";
    static const char want[] = "\1\6\1\2\0\24\0\0Status: 200 OK\r\n\r\n{}"
                               "\1\6\1\2\0\0\0\0"
                               "\1\3\1\2\0\10\0\0\0\0\0\0\0\0\0\0";
    size_t hl = strlen(head), bl = 100000, total = hl + bl;
    unsigned char hdrs[256];
    struct iovec iov[16];
    char *body = malloc(bl);
    const unsigned char *p;
    size_t got = 0, records = 0;
    int n;

    n = wire_reply(0x0102, head, hl, "{}", 2, hdrs, iov);
    flatten(iov, n);
    ok(out_bytes.n == sizeof(want) - 1 &&
           memcmp(out_bytes.b, want, out_bytes.n) == 0,
       "a small reply: STDOUT, the end of STDOUT, END_REQUEST");

    for (size_t i = 0; i < bl; i++)
        body[i] = (char)('a' + i % 26);
    ok(wire_reply_hdrs(total) <= sizeof(hdrs) &&
           wire_reply_iovs(total) <= sizeof(iov) / sizeof(iov[0]),
       "the scratch sizes for 100 kB");
    n = wire_reply(7, head, hl, body, bl, hdrs, iov);
    ok((size_t)n <= wire_reply_iovs(total), "no more iovecs than said");
    flatten(iov, n);
    /* Walk the records: STDOUT ones carry head then body, in order. */
    p = out_bytes.b;
    while (p[1] == 6 && (p[4] << 8 | p[5]) > 0) {
        size_t len = (size_t)(p[4] << 8 | p[5]);

        ok(len <= 65535 && (p[2] << 8 | p[3]) == 7,
           "STDOUT record %zu: %zu bytes, id 7", records + 1, len);
        for (size_t i = 0; i < len; i++, got++)
            if (p[8 + i] != (got < hl ? (unsigned char)head[got]
                                      : (unsigned char)body[got - hl]))
                break;
        p += 8 + len;
        records++;
    }
    is_int(records, 2, "100 kB take two records");
    is_int(got, total, "which carry head and body whole");
    ok(p[1] == 6 && p[4] == 0 && p[5] == 0 && p[8 + 1] == 3 &&
           (size_t)(p + 24 - out_bytes.b) == out_bytes.n,
       "then the end of STDOUT and END_REQUEST, and nothing more");
    free(body);
}

int
main(void)
{
    test_requests();
    test_errors();
    test_refusals();
    test_aborts();
    test_management();
    test_replies();
    return done_testing();
}
