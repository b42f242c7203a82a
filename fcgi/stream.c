/* stream.c -- the /events reply: Server-Sent Events on an open FastCGI
 * reply.
 *
 * The framing is the WHATWG EventSource format: "id:" and "data:" lines,
 * a blank line after each event. A message's JSON has no raw newline, so
 * it always fits one data line.
 */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "views.h"

/* A stream that breaks is asked for again after this, from its last
 * event's id. */
#define STREAM_RETRY "retry: 1000\n\n"
#define STREAM_GAP "event: gap\ndata: {}\n\n"
#define STREAM_KEEP_ALIVE ": ping\n\nevent: ping\ndata: {}\n\n"

int
stream_open(struct req *r)
{
    static const char retry[] = STREAM_RETRY;

    if (req_stream_begin(r, "text/event-stream") < 0)
        return -1;
    return req_stream(r, retry, sizeof(retry) - 1);
}

/* Appends n bytes to *buf (length *len, capacity *cap). */
static void
append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        while (*len + n + 1 > *cap)
            *cap = *cap ? 2 * *cap : 256;
        *buf = xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

char *
stream_events(const struct msg_list *list, size_t *len)
{
    static const char gap[] = STREAM_GAP;
    char *out = xstrdup("");
    size_t cap = 1;

    *len = 0;
    if (list->gap)
        append(&out, len, &cap, gap, sizeof(gap) - 1);
    for (size_t i = 0; i < list->len; i++) {
        const struct msg *m = &list->items[i];
        char id[40];
        int k = snprintf(id, sizeof(id), "id: %lld\ndata: ", (long long)m->ts);
        size_t n;
        char *json = m->json ? NULL : views_message(m, &n);

        append(&out, len, &cap, id, (size_t)k);
        if (json)
            append(&out, len, &cap, json, n);
        else
            append(&out, len, &cap, m->json, m->json_len);
        append(&out, len, &cap, "\n\n", 2);
        free(json);
    }
    return out;
}

int
stream_keep_alive(struct req *r)
{
    static const char keep_alive[] = STREAM_KEEP_ALIVE;

    return req_stream(r, keep_alive, sizeof(keep_alive) - 1);
}
