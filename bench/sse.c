/* sse.c -- an incremental reader of a Server-Sent Events stream.
 *
 * Two small state machines, one feeding the other: the chunked framing of
 * HTTP/1.1 (RFC 9112 7.1) hands the chunks' data to the event-stream
 * parser (WHATWG HTML, "Server-sent events", 9.2.6), and either may stop
 * at any byte and go on with the next piece.
 */
#include "sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum chunk_state {
    CH_SIZE,     /* the hex digits of a chunk's size */
    CH_EXT,      /* the rest of the size line (extensions, CR) */
    CH_DATA,     /* chunk_left bytes of data */
    CH_DATA_END, /* the CRLF after a chunk's data */
    CH_TRAILER,  /* at the start of a trailer line, after the last chunk */
    CH_TRAILER_LINE,
    CH_DONE
};

/* A chunk larger than this is no stream of ours (and cannot overflow). */
#define CHUNK_MAX (1ull << 40)

/* Makes room for need bytes in *buf; out of memory aborts. */
static void
grow(char **buf, size_t *cap, size_t need)
{
    size_t n = *cap ? *cap : 256;

    if (need <= *cap)
        return;
    while (n < need)
        n *= 2;
    *buf = realloc(*buf, n);
    if (!*buf) {
        fputs("sse: out of memory\n", stderr);
        abort();
    }
    *cap = n;
}

void
sse_init(struct sse *s, int chunked)
{
    memset(s, 0, sizeof(*s));
    s->retry_ms = -1;
    sse_restart(s, chunked);
}

void
sse_restart(struct sse *s, int chunked)
{
    s->chunked = chunked;
    s->cstate = CH_SIZE;
    s->chunk_left = 0;
    s->size_digits = 0;
    s->line_len = 0;
    s->after_cr = 0;
    s->data_len = 0;
    s->type[0] = '\0';
}

void
sse_release(struct sse *s)
{
    free(s->line);
    free(s->data);
    s->line = s->data = NULL;
    s->line_cap = s->data_cap = 0;
}

static int
field_is(const char *f, size_t n, const char *name)
{
    return n == strlen(name) && memcmp(f, name, n) == 0;
}

/* An empty line: the event read so far, if it has data, is complete. */
static void
dispatch(struct sse *s, sse_event_fn fn, void *ctx)
{
    struct sse_event ev;

    if (s->data_len == 0) {
        s->type[0] = '\0';
        return;
    }
    s->data_len--; /* the \n after the last data line */
    s->data[s->data_len] = '\0';
    ev.type = s->type[0] ? s->type : "message";
    ev.data = s->data;
    ev.data_len = s->data_len;
    ev.id = s->id;
    fn(ctx, &ev);
    s->data_len = 0;
    s->type[0] = '\0';
}

/* One whole line, without its end. */
static int
take_line(struct sse *s, const char *p, size_t n, sse_event_fn fn, void *ctx)
{
    const char *colon, *v;
    size_t fn_len, vn;

    if (n == 0) {
        dispatch(s, fn, ctx);
        return 0;
    }
    if (p[0] == ':') {
        s->comments++;
        return 0;
    }
    colon = memchr(p, ':', n);
    fn_len = colon ? (size_t)(colon - p) : n;
    v = colon ? colon + 1 : p + n;
    if (v < p + n && *v == ' ')
        v++;
    vn = (size_t)(p + n - v);
    if (field_is(p, fn_len, "data")) {
        if (s->data_len + vn + 2 > SSE_LINE_MAX)
            return -1;
        grow(&s->data, &s->data_cap, s->data_len + vn + 2);
        memcpy(s->data + s->data_len, v, vn);
        s->data_len += vn;
        s->data[s->data_len++] = '\n';
    } else if (field_is(p, fn_len, "event")) {
        snprintf(s->type, sizeof(s->type), "%.*s", (int)vn, v);
    } else if (field_is(p, fn_len, "id")) {
        /* an id that does not fit is not ours to shorten: keep the last */
        if (vn < sizeof(s->id) && !memchr(v, '\0', vn)) {
            memcpy(s->id, v, vn);
            s->id[vn] = '\0';
        }
    } else if (field_is(p, fn_len, "retry")) {
        long ms = 0;
        size_t i;

        for (i = 0; i < vn && v[i] >= '0' && v[i] <= '9' && ms < 1000000000;
             i++)
            ms = ms * 10 + (v[i] - '0');
        if (vn > 0 && i == vn)
            s->retry_ms = ms;
    }
    return 0; /* other fields are ignored, as the specification says */
}

/* Event-stream bytes: lines end in CRLF, LF or CR. A line whole in p is
 * taken where it is; only one cut by the end of p is copied. */
static int
feed_lines(struct sse *s, const char *p, size_t n, sse_event_fn fn, void *ctx)
{
    const char *end = p + n;

    while (p < end) {
        const char *e = p;

        if (s->after_cr) {
            s->after_cr = 0;
            if (*p == '\n') {
                p++;
                continue;
            }
        }
        while (e < end && *e != '\n' && *e != '\r')
            e++;
        if (e == end) {
            if (s->line_len + (size_t)(e - p) > SSE_LINE_MAX)
                return -1;
            grow(&s->line, &s->line_cap, s->line_len + (size_t)(e - p));
            memcpy(s->line + s->line_len, p, (size_t)(e - p));
            s->line_len += (size_t)(e - p);
            return 0;
        }
        s->after_cr = *e == '\r';
        if (s->line_len) {
            if (s->line_len + (size_t)(e - p) > SSE_LINE_MAX)
                return -1;
            grow(&s->line, &s->line_cap, s->line_len + (size_t)(e - p));
            memcpy(s->line + s->line_len, p, (size_t)(e - p));
            s->line_len += (size_t)(e - p);
            if (take_line(s, s->line, s->line_len, fn, ctx) < 0)
                return -1;
            s->line_len = 0;
        } else if (take_line(s, p, (size_t)(e - p), fn, ctx) < 0) {
            return -1;
        }
        p = e + 1;
    }
    return 0;
}

static int
hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The end of a size line: data next, or the trailers after the last. */
static int
size_line_done(struct sse *s)
{
    if (!s->size_digits)
        return -1;
    s->cstate = s->chunk_left ? CH_DATA : CH_TRAILER;
    return 0;
}

int
sse_feed(struct sse *s, const char *p, size_t n, sse_event_fn fn, void *ctx)
{
    const char *end = p + n;

    if (!s->chunked)
        return feed_lines(s, p, n, fn, ctx);
    while (p < end) {
        char ch = *p;
        int d;

        switch (s->cstate) {
        case CH_SIZE:
            d = hex_digit(ch);
            if (d >= 0) {
                s->chunk_left = s->chunk_left * 16 + (unsigned)d;
                if (++s->size_digits > 12 || s->chunk_left > CHUNK_MAX)
                    return -1;
            } else if (ch == '\n') {
                if (size_line_done(s) < 0)
                    return -1;
            } else if (ch == '\r' || ch == ';' || ch == ' ' || ch == '\t') {
                s->cstate = CH_EXT;
            } else {
                return -1;
            }
            p++;
            break;
        case CH_EXT:
            if (ch == '\n' && size_line_done(s) < 0)
                return -1;
            p++;
            break;
        case CH_DATA: {
            size_t k = (size_t)(end - p);

            if (k > s->chunk_left)
                k = (size_t)s->chunk_left;
            if (feed_lines(s, p, k, fn, ctx) < 0)
                return -1;
            s->chunk_left -= k;
            p += k;
            if (!s->chunk_left)
                s->cstate = CH_DATA_END;
            break;
        }
        case CH_DATA_END:
            if (ch == '\n') {
                s->cstate = CH_SIZE;
                s->size_digits = 0;
            } else if (ch != '\r') {
                return -1;
            }
            p++;
            break;
        case CH_TRAILER:
            if (ch == '\n') {
                s->cstate = CH_DONE;
                return 1;
            }
            if (ch != '\r')
                s->cstate = CH_TRAILER_LINE;
            p++;
            break;
        case CH_TRAILER_LINE:
            if (ch == '\n')
                s->cstate = CH_TRAILER;
            p++;
            break;
        case CH_DONE:
        default:
            return 1;
        }
    }
    return s->cstate == CH_DONE;
}
