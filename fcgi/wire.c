/* wire.c -- the FastCGI wire format: requests in, replies out.
 *
 * libfcgi does read further requests on a kept connection (keepConnection
 * in FCGX_Accept_r/FCGX_Finish_r), but only with a thread blocked in
 * FCGX_Accept_r per connection and blocking streams of about 16 KB per
 * request. pgchat parks thousands of requests per worker on one thread, so
 * it does its own I/O (server.c) and keeps only the format here, on
 * libfcgi's definitions, and a parked request costs no stream buffers
 * (README, Performance).
 *
 * One request at a time per connection, as nginx sends them.
 */
#include "wire.h"

#include <fastcgi.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define WIRE_MAX_OUT (64 * 1024) /* records owed and not sent yet */

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
owe_record(struct wire_in *in, int type, uint16_t id, const char *content,
           size_t clen)
{
    unsigned char h[FCGI_HEADER_LEN];

    put_header(h, type, id, clen);
    append(&in->out, &in->olen, &in->ocap, (const char *)h, sizeof(h));
    append(&in->out, &in->olen, &in->ocap, content, clen);
}

void
wire_end(struct wire_in *in, uint16_t id, int status)
{
    FCGI_EndRequestBody end = {.protocolStatus = (unsigned char)status};

    owe_record(in, FCGI_END_REQUEST, id, (const char *)&end, sizeof(end));
}

/* FCGI_MPXS_CONNS is the one variable a web server may ask about that
 * matters here: no multiplexing. */
static void
ask_value(void *arg, const char *name, size_t nlen, const char *value,
          size_t vlen)
{
    static const char mpxs[] = FCGI_MPXS_CONNS;
    char **out = arg;

    (void)value;
    (void)vlen;
    if (nlen == sizeof(mpxs) - 1 && memcmp(name, mpxs, nlen) == 0)
        *out = "\017\001" FCGI_MPXS_CONNS "0";
}

static int
management(struct wire_in *in, int type, const char *content, size_t clen)
{
    if (in->olen > WIRE_MAX_OUT)
        return -1;
    if (type == FCGI_GET_VALUES) {
        char *result = NULL;

        if (each_pair(content, clen, ask_value, &result) < 0)
            return -1;
        owe_record(in, FCGI_GET_VALUES_RESULT, FCGI_NULL_REQUEST_ID,
                   result ? result : "", result ? strlen(result) : 0);
    } else {
        FCGI_UnknownTypeBody body = {.type = (unsigned char)type};

        owe_record(in, FCGI_UNKNOWN_TYPE, FCGI_NULL_REQUEST_ID,
                   (const char *)&body, sizeof(body));
    }
    return 0;
}

/* --- requests ------------------------------------------------------------ */

/* Frees the request being read, if any. */
static void
drop_partial(struct wire_in *in)
{
    free(in->params);
    free(in->body);
    in->params = in->body = NULL;
    in->plen = in->pcap = in->blen = in->bcap = 0;
    in->id = 0;
    in->params_done = in->body_over = 0;
}

/* BEGIN_REQUEST for id. Returns 0, or -1 for a protocol error. */
static int
begin(struct wire_in *in, uint16_t id, const unsigned char *c, size_t clen)
{
    const FCGI_BeginRequestBody *b = (const FCGI_BeginRequestBody *)c;

    if (clen < sizeof(*b) || id == in->id || id == in->busy)
        return -1;
    if (in->id || in->busy)
        wire_end(in, id, FCGI_CANT_MPX_CONN);
    else if ((b->roleB1 << 8 | b->roleB0) != FCGI_RESPONDER)
        wire_end(in, id, FCGI_UNKNOWN_ROLE);
    else {
        in->id = id;
        in->keep = b->flags & FCGI_KEEP_CONN;
    }
    return 0;
}

/* ABORT_REQUEST for id: the request being read ends at once; the busy one
 * is the caller's to end (WIRE_ABORT); any other is not active. */
static enum wire_status
abort_request(struct wire_in *in, uint16_t id)
{
    if (id == in->busy)
        return WIRE_ABORT;
    if (id == in->id) {
        if (!in->keep)
            in->close_after = 1;
        drop_partial(in);
        wire_end(in, id, FCGI_REQUEST_COMPLETE);
    }
    return WIRE_MORE;
}

enum wire_status
wire_feed(struct wire_in *in, const char *buf, size_t len, size_t *used)
{
    size_t off = 0;

    *used = 0;
    while (len - off >= FCGI_HEADER_LEN) {
        const FCGI_Header *h = (const FCGI_Header *)(buf + off);
        uint16_t id = (uint16_t)(h->requestIdB1 << 8 | h->requestIdB0);
        size_t clen = (size_t)h->contentLengthB1 << 8 | h->contentLengthB0;
        size_t total = FCGI_HEADER_LEN + clen + h->paddingLength;
        const char *c = buf + off + FCGI_HEADER_LEN;

        if (h->version != FCGI_VERSION_1)
            return WIRE_ERROR;
        if (len - off < total)
            break; /* the rest of the record has not come yet */
        off += total;
        *used = off;
        if (id == FCGI_NULL_REQUEST_ID) {
            if (management(in, h->type, c, clen) < 0)
                return WIRE_ERROR;
            continue;
        }
        if (in->olen > WIRE_MAX_OUT)
            return WIRE_ERROR; /* refusals the peer does not read */
        switch (h->type) {
        case FCGI_BEGIN_REQUEST:
            if (begin(in, id, (const unsigned char *)c, clen) < 0)
                return WIRE_ERROR;
            break;
        case FCGI_ABORT_REQUEST:
            if (abort_request(in, id) == WIRE_ABORT)
                return WIRE_ABORT;
            break;
        case FCGI_PARAMS:
            if (id != in->id)
                break; /* not active: refused, aborted or never begun */
            if (in->params_done)
                return WIRE_ERROR;
            if (clen == 0)
                in->params_done = 1;
            else if (in->plen + clen > WIRE_MAX_PARAMS)
                return WIRE_ERROR;
            else
                append(&in->params, &in->plen, &in->pcap, c, clen);
            break;
        case FCGI_STDIN:
            if (id != in->id)
                break;
            if (!in->params_done)
                return WIRE_ERROR;
            if (clen == 0) {
                in->busy = in->id;
                return WIRE_READY;
            }
            if (in->blen + clen > in->max_body)
                in->body_over = 1; /* read on, but keep nothing more */
            else
                append(&in->body, &in->blen, &in->bcap, c, clen);
            break;
        case FCGI_DATA:
            break; /* the filter role's; a responder ignores it */
        default:
            /* Records only an application sends, or no known type. */
            return WIRE_ERROR;
        }
    }
    return WIRE_MORE;
}

void
wire_in_next(struct wire_in *in)
{
    drop_partial(in);
}

void
wire_done(struct wire_in *in)
{
    in->busy = 0;
}

void
wire_in_reset(struct wire_in *in)
{
    size_t max_body = in->max_body;

    free(in->params);
    free(in->body);
    free(in->out);
    memset(in, 0, sizeof(*in));
    in->max_body = max_body;
}

/* --- parameters ---------------------------------------------------------- */

static void
copy_pair(void *arg, const char *name, size_t nlen, const char *value,
          size_t vlen)
{
    struct wire_params *p = arg;
    char *dst = p->mem;

    /* p->mem advances while filling; wire_params_decode rewinds it. */
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
wire_params_decode(struct wire_params *p, const char *raw, size_t len)
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
wire_param(const struct wire_params *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0)
            return p->values[i];
    return NULL;
}

void
wire_params_release(struct wire_params *p)
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
    return (len + FCGI_MAX_LENGTH - 1) / FCGI_MAX_LENGTH;
}

size_t
wire_reply_hdrs(size_t len)
{
    /* A header per STDOUT record, then the empty STDOUT record and
     * END_REQUEST (a header and eight bytes of body). */
    return FCGI_HEADER_LEN * records(len) + 3 * FCGI_HEADER_LEN;
}

size_t
wire_reply_iovs(size_t len)
{
    /* A record's content may span the end of head and the start of body. */
    return 3 * records(len) + 1;
}

/* The STDOUT records carrying head then body; returns how many iovecs. */
static int
stdout_records(uint16_t id, const char *head, size_t hlen, const char *body,
               size_t blen, unsigned char *hdrs, struct iovec *iov)
{
    size_t total = hlen + blen, done = 0;
    int n = 0;

    while (done < total) {
        size_t chunk = total - done;

        if (chunk > FCGI_MAX_LENGTH)
            chunk = FCGI_MAX_LENGTH;
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
    return n;
}

int
wire_stdout(uint16_t id, const char *head, size_t hlen, const char *body,
            size_t blen, unsigned char *hdrs, struct iovec *iov)
{
    return stdout_records(id, head, hlen, body, blen, hdrs, iov);
}

int
wire_reply(uint16_t id, const char *head, size_t hlen, const char *body,
           size_t blen, unsigned char *hdrs, struct iovec *iov)
{
    int n = stdout_records(id, head, hlen, body, blen, hdrs, iov);

    hdrs += FCGI_HEADER_LEN * records(hlen + blen);
    put_header(hdrs, FCGI_STDOUT, id, 0);
    put_header(hdrs + FCGI_HEADER_LEN, FCGI_END_REQUEST, id,
               sizeof(FCGI_EndRequestBody));
    memset(hdrs + 2 * FCGI_HEADER_LEN, 0, sizeof(FCGI_EndRequestBody));
    ((FCGI_EndRequestBody *)(hdrs + 2 * FCGI_HEADER_LEN))->protocolStatus =
        FCGI_REQUEST_COMPLETE;
    iov[n++] = (struct iovec){hdrs, 3 * FCGI_HEADER_LEN};
    return n;
}
