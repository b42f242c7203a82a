/* deliver.c -- giving messages to waiting readers: one body per cursor
 * in each form asked for, a long-poll answer or a stream's events, and the
 * keep-alives of those still waiting.
 */
#include "deliver.h"

#include <stdlib.h>

#include "config.h"
#include "park.h"
#include "stats.h"
#include "stream.h"
#include "util.h"
#include "views.h"

char *
deliver_body(const struct msg_list *list, int ping, size_t *len)
{
    return views_messages(list, rss_current(), ping, len);
}

/* What the readers of one cursor get, made once in each form asked for. */
struct bodies {
    const struct msg_list *list;
    char *json, *events;
    size_t jlen, elen;
};

static void
bodies_release(struct bodies *b)
{
    free(b->json);
    free(b->events);
}

/* After a fan-out to n readers the room pauses, so that what comes next
 * travels together with what comes meanwhile: PGCHAT_BATCH_MS after
 * PGCHAT_BATCH_READERS readers or more, less in proportion for fewer. A
 * fan-out costs one reply per reader, so a busy room costs at most about
 * batch_readers replies per batch_ms however many read it, and a room of
 * ten, where a fan-out costs next to nothing, waits a millisecond and not
 * a hundred. */
static void
pause_room(struct room *rm, size_t n)
{
    int64_t ms = config.batch_ms;

    if (n < (size_t)config.batch_readers)
        ms = ms * (int64_t)n / config.batch_readers;
    if (mono_ms() + ms > rm->quiet_until)
        rm->quiet_until = mono_ms() + ms;
}

/* Gives rd the messages of b: a long-poll reader is answered, a stream
 * gets them as events and waits on from its new cursor. Returns 1 for a
 * stream still behind the head (a page was not all it lacks). */
static int
give(struct room *rm, struct reader *rd, struct bodies *b)
{
    if (!rd->stream) {
        if (!b->json)
            b->json = deliver_body(b->list, 0, &b->jlen);
        park_answer(rd, b->json, b->jlen);
        return 0;
    }
    if (!b->events)
        b->events = stream_events(b->list, &b->elen);
    if (req_stream(rd->req, b->events, b->elen) < 0) {
        park_drop(rd);
        return 0;
    }
    if (b->list->len)
        rd->since = b->list->items[b->list->len - 1].ts;
    park_again(rd, config.recv_timeout_ms);
    return rd->since < rm->head;
}

/* The keep-alive of a waiting reader: a ping for long-poll; a stream's
 * (stream.h), after which it waits on. */
static void
keep_alive(struct reader *rd, const char *ping_body, size_t len)
{
    if (!rd->stream)
        park_answer(rd, ping_body, len);
    else if (stream_keep_alive(rd->req) < 0)
        park_drop(rd);
    else
        park_again(rd, config.recv_timeout_ms);
}

int
deliver_cursor(struct room *rm, int64_t since, const struct msg_list *list)
{
    struct bodies b = {.list = list};
    struct reader *rd, *next;
    size_t given = 0;
    int behind = 0;

    for (rd = rm->readers; rd; rd = next) {
        next = rd->next;
        if (rd->since != since)
            continue;
        behind |= give(rm, rd, &b);
        given++;
    }
    if (given)
        pause_room(rm, given);
    bodies_release(&b);
    return behind;
}

static int
by_since(const void *a, const void *b)
{
    const struct reader *x = *(struct reader *const *)a;
    const struct reader *y = *(struct reader *const *)b;

    return (x->since > y->since) - (x->since < y->since);
}

int64_t
deliver_window(struct room *rm, int *behind)
{
    struct reader **v = xcalloc(rm->nreaders, sizeof(*v));
    size_t n = 0, given = 0;
    int64_t missing = -1;

    *behind = 0;
    for (struct reader *rd = rm->readers; rd; rd = rd->next)
        if (rd->since < rm->head)
            v[n++] = rd;
    qsort(v, n, sizeof(*v), by_since);
    for (size_t i = 0; i < n;) {
        int64_t since = v[i]->since;
        struct msg_list view;
        size_t j = i;

        while (j < n && v[j]->since == since)
            j++;
        if (recent_slice(&rm->recent, since, DELIVER_PAGE, &view) == 0 &&
            view.len) {
            struct bodies b = {.list = &view};

            for (size_t k = i; k < j; k++)
                *behind |= give(rm, v[k], &b);
            bodies_release(&b);
            given += j - i;
        } else if (missing < 0) {
            missing = since;
        }
        i = j;
    }
    free(v);
    if (given)
        pause_room(rm, given);
    /* Every reader behind is answered, here or by deliver_cursor() before:
     * the fan-out that the NOTIFY started is over. */
    if (missing < 0 && rm->notified_us) {
        stats_fanout(stats_now_us() - rm->notified_us);
        rm->notified_us = 0;
    }
    return missing;
}

void
deliver_keep_alive(int64_t until, int all)
{
    char *body = NULL;
    size_t len = 0;
    struct reader *rd;

    while ((rd = park_oldest()) && (all || rd->deadline <= until)) {
        if (!body)
            body = deliver_body(NULL, 1, &len);
        if (all && rd->stream)
            park_end(rd);
        else
            keep_alive(rd, body, len);
    }
    free(body);
}
