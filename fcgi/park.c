/* park.c -- readers: /recv and /events requests the event loop holds
 * until a message or their keep-alive.
 *
 * Every reader waits PGCHAT_RECV_TIMEOUT, so the list by deadline is the
 * order of parking: adding is at its tail and the next ping at its head.
 */
#include "park.h"

#include <stdlib.h>

#include "stats.h"
#include "util.h"

static struct {
    struct reader *oldest, *newest;
    size_t n;
} parked;

struct reader *
park_new(struct req *r, struct room *rm, int64_t since, const char *id)
{
    struct reader *rd = xcalloc(1, sizeof(*rd));

    rd->req = r;
    rd->room = rm;
    rd->since = since;
    rd->id = id;
    r->holder = rd;
    return rd;
}

/* The list by deadline: out of it, and in at its tail. */
static void
tlist_remove(struct reader *rd)
{
    if (rd->tprev)
        rd->tprev->tnext = rd->tnext;
    else
        parked.oldest = rd->tnext;
    if (rd->tnext)
        rd->tnext->tprev = rd->tprev;
    else
        parked.newest = rd->tprev;
}

static void
tlist_append(struct reader *rd, int deadline_ms)
{
    rd->deadline = mono_ms() + deadline_ms;
    if (rd->deadline == 0)
        rd->deadline = 1; /* 0 means not waiting */
    rd->tnext = NULL;
    rd->tprev = parked.newest;
    if (parked.newest)
        parked.newest->tnext = rd;
    else
        parked.oldest = rd;
    parked.newest = rd;
}

static int
waiting(const struct reader *rd)
{
    return rd->deadline != 0;
}

static void
unpark(struct reader *rd)
{
    struct room *rm = rd->room;

    if (!waiting(rd))
        return;
    if (rd->prev)
        rd->prev->next = rd->next;
    else
        rm->readers = rd->next;
    if (rd->next)
        rd->next->prev = rd->prev;
    rm->nreaders--;
    tlist_remove(rd);
    parked.n--;
    stats_add(&stats.parked, -1);
    stats_add(&stats_all->parked, -1);
    rd->deadline = 0;
    rd->req->cancel = NULL;
}

/* The client left: nobody reads the answer. */
static void
cancel(struct req *r)
{
    struct reader *rd = r->holder;

    unpark(rd);
    req_drop(r);
    free(rd);
}

void
park_wait(struct reader *rd, int deadline_ms)
{
    struct room *rm = rd->room;

    rd->prev = NULL;
    rd->next = rm->readers;
    if (rm->readers)
        rm->readers->prev = rd;
    rm->readers = rd;
    rm->nreaders++;
    tlist_append(rd, deadline_ms);
    parked.n++;
    stats_add(&stats.parked, 1);
    stats_add(&stats_all->parked, 1);
    rd->req->cancel = cancel;
}

void
park_again(struct reader *rd, int deadline_ms)
{
    tlist_remove(rd);
    tlist_append(rd, deadline_ms);
}

void
park_end(struct reader *rd)
{
    unpark(rd);
    req_stream_end(rd->req);
    free(rd);
}

void
park_drop(struct reader *rd)
{
    unpark(rd);
    req_drop(rd->req);
    free(rd);
}

void
park_answer(struct reader *rd, const char *body, size_t len)
{
    unpark(rd);
    req_reply(rd->req, 200, body, len);
    free(rd);
}

void
park_error(struct reader *rd, int status, const char *message)
{
    unpark(rd);
    req_error(rd->req, status, message);
    free(rd);
}

struct reader *
park_oldest(void)
{
    return parked.oldest;
}

struct reader *
park_next(const struct reader *rd)
{
    return rd->tnext;
}

size_t
park_count(void)
{
    return parked.n;
}
