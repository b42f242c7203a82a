/* sse.h -- an incremental reader of a Server-Sent Events stream.
 *
 * It takes the body of an HTTP/1.1 response in pieces of any size, as they
 * come off the socket: the chunked framing (or none: then the body ends
 * when the peer closes) and the event-stream lines, either of which may be
 * cut anywhere. Nothing is shared: one struct sse per connection.
 */
#ifndef BENCH_SSE_H
#define BENCH_SSE_H

#include <stddef.h>

/* The longest line, and the most data of one event: beyond either the
 * stream is refused (the largest pgchat message, escaped, is about 25 kB). */
#define SSE_LINE_MAX 262144

struct sse_event {
    const char *type; /* "message" unless an "event:" line said otherwise */
    const char *data; /* the data lines joined by \n, NUL-terminated */
    size_t data_len;
    const char *id; /* the last event id of the stream so far, or "" */
};

/* Borrows ev until it returns. */
typedef void (*sse_event_fn)(void *ctx, const struct sse_event *ev);

struct sse {
    /* the framing */
    int chunked;
    int cstate;
    unsigned long long chunk_left;
    int size_digits;
    /* the lines */
    char *line; /* a line cut by the end of a piece, kept until its end */
    size_t line_len, line_cap;
    int after_cr; /* the last line ended in CR: an LF next belongs to it */
    char *data;
    size_t data_len, data_cap;
    char type[32];
    char id[128];  /* kept across events and sse_restart, as EventSource */
    long comments; /* comment lines: keep-alives (": ping") and the like */
    long retry_ms; /* the last "retry:" field, or -1 */
};

/* Sets up s for a first stream; chunked: the response said
 * Transfer-Encoding: chunked. */
void sse_init(struct sse *s, int chunked);

/* Sets s up for the next response on a new connection: the framing, the
 * line and the event being read start afresh; the last event id, the
 * counters and the buffers stay. */
void sse_restart(struct sse *s, int chunked);

/* Frees what s holds (s itself is the caller's). */
void sse_release(struct sse *s);

/* Reads the next n bytes of the body, calling fn for every event they
 * complete. Returns 1 when the body has ended (its last chunk: the bytes
 * after it are not looked at), 0 when more may come, -1 when the framing
 * is bad or a line or an event's data exceeds SSE_LINE_MAX. */
int sse_feed(struct sse *s, const char *p, size_t n, sse_event_fn fn,
             void *ctx);

#endif
