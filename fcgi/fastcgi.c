/* fastcgi.c -- the FastCGI wire format: requests in, replies out.
 *
 * pgchat speaks FastCGI itself rather than through libfcgi because libfcgi
 * cannot keep a connection: it never reads a second request on one, so
 * nginx's fastcgi_keep_conn is unusable with it, and every request then
 * costs a socket, a connect, an accept and two closes, which the profile of
 * a 10,000-reader fan-out put at a third of the machine. The protocol is
 * small (FastCGI 1.0, section 5: eight-byte record headers, length-prefixed
 * name-value pairs) and only the responder role is needed.
 *
 * One request at a time per connection, as nginx sends them; a second
 * BEGIN_REQUEST before the first is answered is a protocol error.
 */
#include "fastcgi.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define FCGI_VERSION_1 1
#define FCGI_HEADER_LEN 8
#define FCGI_MAX_CONTENT 65535
#define FCGI_MAX_MGMT (64 * 1024) /* unsent management replies */

enum {
    FCGI_BEGIN_REQUEST = 1,
    FCGI_ABORT_REQUEST = 2,
    FCGI_END_REQUEST = 3,
    FCGI_PARAMS = 4,
    FCGI_STDIN = 5,
    FCGI_STDOUT = 6,
    FCGI_DATA = 8,
    FCGI_GET_VALUES = 9,
    FCGI_GET_VALUES_RESULT = 10,
    FCGI_UNKNOWN_TYPE = 11,
};

#define FCGI_RESPONDER 1
#define FCGI_KEEP_CONN 1
#define FCGI_REQUEST_COMPLETE 0

static void
put_header(unsigned char *h, int type, uint16_t id, size_t clen)
{
    h[0] = FCGI_VERSION_1;
    h[1] = (unsigned char)type;
    h[2] = id >> 8;
    h[3] = id & 0xff;
    h[4] = (clen >> 8) & 0xff;
    h[5] = clen & 0xff;
    h[6] = 0; /* padding: optional, and nginx needs none */
    h[7] = 0;
}

/* Appends n bytes to *buf (length *len, capacity *cap). */
static void
append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n > *cap) {
        *cap = *cap ? *cap : 256;
        while (*cap < *len + n)
            *cap *= 2;
        *buf = xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

/* Reads one length of a name-value pair (one byte, or four with the high
 * bit set). Returns 0, or -1 past end. */
static int
pair_len(const unsigned char **p, const unsigned char *end, size_t *out)
{
    const unsigned char *q = *p;

    if (q >= end)
        return -1;
    if (!(q[0] & 0x80)) {
        *out = q[0];
        *p = q + 1;
        return 0;
    }
    if (end - q < 4)
        return -1;
    *out = ((size_t)(q[0] & 0x7f) << 24) | ((size_t)q[1] << 16) |
           ((size_t)q[2] << 8) | q[3];
    *p = q + 4;
    return 0;
}

/* Calls fn for each pair in raw; returns the number of pairs, or -1 when
 * they are malformed. */
static long
each_pair(const char *raw, size_t len,
          void (*fn)(void *arg, const char *name, size_t nlen,
                     const char *value, size_t vlen),
          void *arg)
{
    const unsigned char *p = (const unsigned char *)raw, *end;
    long n = 0;

    if (len == 0)
        return 0; /* raw may be NULL: no request had parameters */
    end = p + len;
    while (p < end) {
        size_t nlen, vlen;

        if (pair_len(&p, end, &nlen) < 0 || pair_len(&p, end, &vlen) < 0 ||
            nlen > (size_t)(end - p) || vlen > (size_t)(end - p) - nlen)
            return -1;
        if (fn)
            fn(arg, (const char *)p, nlen, (const char *)p + nlen, vlen);
        p += nlen + vlen;
        n++;
    }
    return n;
}

/* --- management records (request id 0) ---------------------------------- */

static void
mgmt_record(struct fcgi_in *in, int type, const char *content, size_t clen)
{
    unsigned char h[FCGI_HEADER_LEN];

    put_header(h, type, 0, clen);
    append(&in->mgmt, &in->mlen, &in->mcap, (const char *)h, sizeof(h));
    append(&in->mgmt, &in->mlen, &in->mcap, content, clen);
}

/* FCGI_MPXS_CONNS is the one variable a web server may ask about that
 * matters here: no multiplexing. */
static void
ask_value(void *arg, const char *name, size_t nlen, const char *value,
          size_t vlen)
{
    static const char mpxs[] = "FCGI_MPXS_CONNS";
    char **out = arg;

    (void)value;
    (void)vlen;
    if (nlen == sizeof(mpxs) - 1 && memcmp(name, mpxs, nlen) == 0)
        *out = "\017\001FCGI_MPXS_CONNS0";
}

static int
management(struct fcgi_in *in, int type, const char *content, size_t clen)
{
    if (in->mlen > FCGI_MAX_MGMT)
        return -1;
    if (type == FCGI_GET_VALUES) {
        char *result = NULL;

        if (each_pair(content, clen, ask_value, &result) < 0)
            return -1;
        mgmt_record(in, FCGI_GET_VALUES_RESULT, result ? result : "",
                    result ? 2 + 15 + 1 : 0);
    } else {
        char body[8] = {(char)type};

        mgmt_record(in, FCGI_UNKNOWN_TYPE, body, sizeof(body));
    }
    return 0;
}

/* --- requests ------------------------------------------------------------ */

enum fcgi_status
fcgi_feed(struct fcgi_in *in, const char *buf, size_t len, size_t *used)
{
    size_t off = 0;

    *used = 0;
    while (len - off >= FCGI_HEADER_LEN) {
        const unsigned char *h = (const unsigned char *)buf + off;
        uint16_t id = (uint16_t)(h[2] << 8 | h[3]);
        size_t clen = (size_t)h[4] << 8 | h[5];
        size_t total = FCGI_HEADER_LEN + clen + h[6];
        const char *c = buf + off + FCGI_HEADER_LEN;

        if (h[0] != FCGI_VERSION_1)
            return FCGI_ERROR;
        if (len - off < total)
            break; /* the rest of the record has not come yet */
        off += total;
        *used = off;
        if (id == 0) {
            if (management(in, h[1], c, clen) < 0)
                return FCGI_ERROR;
            continue;
        }
        switch (h[1]) {
        case FCGI_BEGIN_REQUEST:
            if (in->id || clen < 8 ||
                ((unsigned char)c[0] << 8 | (unsigned char)c[1]) !=
                    FCGI_RESPONDER)
                return FCGI_ERROR;
            in->id = id;
            in->keep = c[2] & FCGI_KEEP_CONN;
            break;
        case FCGI_PARAMS:
            if (id != in->id || in->params_done)
                return FCGI_ERROR;
            if (clen == 0)
                in->params_done = 1;
            else if (in->plen + clen > FCGI_MAX_PARAMS)
                return FCGI_ERROR;
            else
                append(&in->params, &in->plen, &in->pcap, c, clen);
            break;
        case FCGI_STDIN:
            if (id != in->id || !in->params_done)
                return FCGI_ERROR;
            if (clen == 0)
                return FCGI_READY;
            if (in->blen + clen > in->max_body)
                in->body_over = 1; /* read on, but keep nothing more */
            else
                append(&in->body, &in->blen, &in->bcap, c, clen);
            break;
        case FCGI_DATA:
            if (id != in->id)
                return FCGI_ERROR;
            break; /* the filter role's; a responder ignores it */
        default:
            /* ABORT_REQUEST (nginx closes the connection instead) and
             * records only an application sends. */
            return FCGI_ERROR;
        }
    }
    return FCGI_MORE;
}

void
fcgi_in_reset(struct fcgi_in *in)
{
    size_t max_body = in->max_body;

    free(in->params);
    free(in->body);
    free(in->mgmt);
    memset(in, 0, sizeof(*in));
    in->max_body = max_body;
}

/* --- parameters ---------------------------------------------------------- */

static void
copy_pair(void *arg, const char *name, size_t nlen, const char *value,
          size_t vlen)
{
    struct fcgi_params *p = arg;
    char *dst = p->mem;

    /* p->mem advances while filling; fcgi_params_decode rewinds it. */
    memcpy(dst, name, nlen);
    dst[nlen] = '\0';
    memcpy(dst + nlen + 1, value, vlen);
    dst[nlen + 1 + vlen] = '\0';
    p->names[p->n] = dst;
    p->values[p->n] = dst + nlen + 1;
    p->n++;
    p->mem = dst + nlen + vlen + 2;
}

int
fcgi_params_decode(struct fcgi_params *p, const char *raw, size_t len)
{
    long n = each_pair(raw, len, NULL, NULL);
    char *mem;

    memset(p, 0, sizeof(*p));
    if (n < 0)
        return -1;
    /* Names and values take at most len bytes, plus two NULs a pair. */
    mem = xmalloc(len + 2 * (size_t)n + 1);
    p->names = xcalloc((size_t)n + 1, sizeof(*p->names));
    p->values = xcalloc((size_t)n + 1, sizeof(*p->values));
    p->mem = mem;
    each_pair(raw, len, copy_pair, p);
    p->mem = mem;
    return 0;
}

const char *
fcgi_param(const struct fcgi_params *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0)
            return p->values[i];
    return NULL;
}

void
fcgi_params_release(struct fcgi_params *p)
{
    free(p->mem);
    free(p->names);
    free(p->values);
    memset(p, 0, sizeof(*p));
}

/* --- replies ------------------------------------------------------------- */

static size_t
records(size_t len)
{
    return (len + FCGI_MAX_CONTENT - 1) / FCGI_MAX_CONTENT;
}

size_t
fcgi_reply_hdrs(size_t len)
{
    /* A header per STDOUT record, then the empty STDOUT record and
     * END_REQUEST (a header and eight bytes of body). */
    return FCGI_HEADER_LEN * records(len) + 3 * FCGI_HEADER_LEN;
}

size_t
fcgi_reply_iovs(size_t len)
{
    /* A record's content may span the end of head and the start of body. */
    return 3 * records(len) + 1;
}

int
fcgi_reply(uint16_t id, const char *head, size_t hlen, const char *body,
           size_t blen, unsigned char *hdrs, struct iovec *iov)
{
    size_t total = hlen + blen, done = 0;
    int n = 0;

    while (done < total) {
        size_t chunk = total - done;

        if (chunk > FCGI_MAX_CONTENT)
            chunk = FCGI_MAX_CONTENT;
        put_header(hdrs, FCGI_STDOUT, id, chunk);
        iov[n++] = (struct iovec){hdrs, FCGI_HEADER_LEN};
        hdrs += FCGI_HEADER_LEN;
        for (size_t end = done + chunk; done < end;) {
            const char *src = done < hlen ? head + done : body + (done - hlen);
            size_t avail = done < hlen ? hlen - done : total - done;
            size_t take = end - done < avail ? end - done : avail;

            iov[n++] = (struct iovec){(void *)src, take};
            done += take;
        }
    }
    put_header(hdrs, FCGI_STDOUT, id, 0);
    put_header(hdrs + FCGI_HEADER_LEN, FCGI_END_REQUEST, id, 8);
    memset(hdrs + 2 * FCGI_HEADER_LEN, 0, 8); /* app status 0, COMPLETE */
    hdrs[2 * FCGI_HEADER_LEN + 4] = FCGI_REQUEST_COMPLETE;
    iov[n++] = (struct iovec){hdrs, 3 * FCGI_HEADER_LEN};
    return n;
}
