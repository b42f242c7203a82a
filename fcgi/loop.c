/* loop.c -- every /recv of the worker, decided on the loop thread.
 *
 * Parking is safe because one thread does it all: the loop knows, per
 * room, the newest timestamp "head" that it has seen committed (from a
 * query or a NOTIFY payload, both on the LISTEN connection while it
 * LISTENs). A reader whose cursor is at or past head is parked without a
 * query: any later commit in the room sends a NOTIFY that this same thread
 * handles after the park, so no wake-up can fall in between. A reader behind
 * head is answered from the room's window (rooms.h), or parked with its room
 * marked, and the room is then served by one query at a time on the LISTEN
 * connection, never waited for: the answer finishes the work when it
 * comes. A NOTIFY marks its room; a marked room's window is brought up to
 * date with one query, and its readers are answered from it, grouped by
 * cursor, one serialised body per group.
 *
 * A busy room is fanned out at most once per PGCHAT_BATCH_MS (100 ms, for
 * a room of PGCHAT_BATCH_READERS; less in proportion for fewer readers,
 * see deliver.c): what comes meanwhile, and readers that poll again
 * meanwhile, wait for the next one. Each reply then carries more messages,
 * and a flood no longer makes every reader poll once per message (make
 * bench, 1000 readers and 8 senders flat out: about 800 messages a second
 * against 190). A quiet room answers at once.
 */
#include "loop.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "listen.h"
#include "deliver.h"
#include "park.h"
#include "rooms.h"
#include "stats.h"
#include "util.h"
#include "views.h"

#define LOOP_PAGE DELIVER_PAGE
#define LOOP_TOUCH_MS 5000  /* keep-alives are handed on this often */
#define LOOP_PRUNE_MS 10000 /* idle rooms are looked for this often */
#define LOOP_RETRY_MS 1000  /* a room whose query failed waits this long */

static struct {
    loop_touch_fn touch;
    char **touches; /* owned: ids of readers answered without waiting */
    size_t ntouches, touch_cap;
    int any_dirty;
    int64_t next_due; /* the earliest quiet_until of a marked room */
    int64_t next_touch, next_prune, next_rss;
    int touch_ms;
    int stopping;
} L;

/* A query in flight for a room. */
struct fetch {
    struct room *room;
    int64_t since;
    int limit;
};

static void service(struct room *rm);
static void fetch(struct room *rm, int64_t since, int limit);

static void
mark_dirty(struct room *rm)
{
    if (rm->nreaders) {
        rm->dirty = 1;
        L.any_dirty = 1;
        if (rm->quiet_until < L.next_due)
            L.next_due = rm->quiet_until;
    }
}

static void
touch_later(const char *id)
{
    if (!id)
        return;
    if (L.ntouches == L.touch_cap) {
        L.touch_cap = L.touch_cap ? 2 * L.touch_cap : 64;
        L.touches = xrealloc(L.touches, L.touch_cap * sizeof(*L.touches));
    }
    L.touches[L.ntouches++] = xstrdup(id);
}

/* Answers a reader that did not wait. Its session is marked active with
 * the next keep-alives; a waiting reader's is marked while it waits. */
static void
answer_now(struct reader *rd, const struct msg_list *list)
{
    size_t len;
    char *body = deliver_body(list, 0, &len);

    touch_later(rd->id);
    park_answer(rd, body, len);
    free(body);
}

static void
ping(struct reader *rd)
{
    size_t len;
    char *body = deliver_body(NULL, 1, &len);

    park_answer(rd, body, len);
    free(body);
}

/* --- querying ------------------------------------------------------------ */

static void
on_fetched(void *arg, struct msg_list *list, int64_t head)
{
    struct fetch *f = arg;
    struct room *rm = f->room;
    int64_t missing;
    int behind = 0, more;

    rm->querying = 0;
    if (!list) {
        /* Read again after a pause, or once the connection is back. */
        rm->quiet_until = mono_ms() + LOOP_RETRY_MS;
        mark_dirty(rm);
        free(f);
        return;
    }
    views_prepare(list); /* it stays in the window for the next replies */
    if (list->len) {
        behind = deliver_cursor(rm, f->since, list);
    } else if (head > f->since) {
        /* Nothing is left between the cursor and the head (retention):
         * those readers wait for what comes next. */
        for (struct reader *rd = rm->readers; rd; rd = rd->next)
            if (rd->since == f->since)
                rd->since = head;
    }
    rooms_learn(rm, f->since, list, head, f->limit);
    free(f);
    /* This answer is the round's fan-out: everyone the window can answer
     * now is, or a busy room's catch-up would never reach its readers
     * behind (each round would find a newer head and catch up again). */
    missing = deliver_window(rm, &more);
    if (missing >= 0)
        fetch(rm, missing, LOOP_PAGE);
    else if (behind || more || rm->recent.head < rm->head || !rm->recent.valid)
        mark_dirty(rm);
}

/* Queries at most limit messages of rm after since; the answer comes to
 * on_fetched(). */
static void
fetch(struct room *rm, int64_t since, int limit)
{
    struct fetch *f = xmalloc(sizeof(*f));

    f->room = rm;
    f->since = since;
    f->limit = limit;
    if (listen_recv(rm->name, since, limit, on_fetched, f) < 0) {
        free(f); /* not listening: up() marks the room again */
        rm->dirty = 1;
        return;
    }
    rm->querying = 1;
}

/* Does what a marked room needs next: learn its head, bring its window up,
 * answer its readers, or query for a cursor before the window. */
static void
service(struct room *rm)
{
    struct recent *rc = &rm->recent;
    int64_t now = mono_ms(), missing;
    int behind;

    if (!rm->dirty || rm->querying)
        return;
    if (!rm->nreaders) {
        rm->dirty = 0;
        return;
    }
    if (!listen_up() || now < rm->quiet_until) {
        mark_dirty(rm); /* served when due, or once listening again */
        return;
    }
    rm->dirty = 0;
    if (!rm->known || (rc->valid && rc->head < rm->head)) {
        int64_t since = rc->valid ? rc->head : INT64_MAX;

        for (struct reader *rd = rm->readers; !rc->valid && rd; rd = rd->next)
            if (rd->since < since)
                since = rd->since;
        fetch(rm, since, rc->valid ? RECENT_MAX : LOOP_PAGE);
        return;
    }
    missing = deliver_window(rm, &behind);
    if (missing >= 0)
        fetch(rm, missing, LOOP_PAGE);
    else if (behind)
        mark_dirty(rm); /* streams a page was not all for: next round */
}

static void
service_dirty(struct room *rm)
{
    if (rm->dirty)
        service(rm);
}

/* --- the LISTEN connection's news ---------------------------------------- */

static void
on_notify(const char *room, int64_t head)
{
    struct room *rm = rooms_find(room);

    if (!rm)
        return; /* nobody here reads that room */
    if (rm->known && head > rm->head)
        rm->head = head;
    if (!rm->notified_us && rm->nreaders)
        rm->notified_us = stats_now_us();
    mark_dirty(rm);
}

static void
forget_head(struct room *rm)
{
    rm->known = 0;
}

/* After a new LISTEN nothing learnt before can be trusted: notifications
 * may have been missed. Every room with readers is read again. */
static void
relearn(struct room *rm)
{
    rm->known = 0;
    rm->quiet_until = 0;
    mark_dirty(rm);
}

static void
on_up(void)
{
    rooms_each(relearn);
}

static void
on_down(void)
{
    rooms_each(forget_head);
}

/* --- requests ------------------------------------------------------------ */

void
loop_recv(struct req *r, const char *room, int64_t since, const char *id)
{
    struct room *rm = rooms_get(room);
    struct reader *rd = park_new(r, rm, since, id);
    struct msg_list view;
    int64_t now = mono_ms();

    rm->used = now;
    if (L.stopping) {
        ping(rd); /* nobody would wake it: the client asks again */
        return;
    }
    if (rm->known && since >= rm->head) {
        park_wait(rd, config.recv_timeout_ms);
        return;
    }
    /* About to answer from what is known: first learn of commits whose
     * NOTIFY has come already (a client that has just sent, asking another
     * worker, then sees its own message). */
    listen_drain();
    /* A window behind a known head waits for the catch-up, which serves
     * every reader of the room, instead of giving an answer already old. */
    if ((!rm->known || rm->recent.head >= rm->head) &&
        recent_slice(&rm->recent, since, LOOP_PAGE, &view) == 0 && view.len) {
        /* Right after a fan-out (a busy room), a reader less than a page
         * behind waits for the next one: its news and what comes meanwhile
         * then travel in one reply, not one each. */
        if (rm->known && now < rm->quiet_until && view.len < LOOP_PAGE) {
            park_wait(rd, config.recv_timeout_ms);
            mark_dirty(rm);
            return;
        }
        answer_now(rd, &view);
        return;
    }
    park_wait(rd, config.recv_timeout_ms);
    mark_dirty(rm);
    service(rm);
}

void
loop_events(struct req *r, const char *room, int64_t since, const char *id)
{
    static const char retry[] = "retry: 1000\n\n";
    struct room *rm = rooms_get(room);
    struct reader *rd = park_new(r, rm, since, id);

    rd->stream = 1;
    rm->used = mono_ms();
    /* A stream that breaks is asked for again after a second, from its
     * last event's id (EventSource's Last-Event-ID). */
    if (req_stream_begin(r, "text/event-stream") < 0 ||
        req_stream(r, retry, sizeof(retry) - 1) < 0) {
        park_drop(rd);
        return;
    }
    if (L.stopping) {
        park_end(rd); /* its client asks again, elsewhere */
        return;
    }
    park_wait(rd, config.recv_timeout_ms);
    if (rm->known && since >= rm->head)
        return;
    listen_drain();
    mark_dirty(rm);
    service(rm);
}

int
loop_healthy(void)
{
    return listen_healthy();
}

/* --- timers -------------------------------------------------------------- */

/* Hands on the keep-alives gathered since the last time, plus one for
 * every session waiting here. */
static void
hand_touches(void)
{
    for (struct reader *rd = park_oldest(); rd; rd = park_next(rd))
        touch_later(rd->id);
    if (L.ntouches)
        L.touch(L.touches, L.ntouches);
    else
        free(L.touches);
    L.touches = NULL;
    L.ntouches = L.touch_cap = 0;
}

int64_t
loop_due(void)
{
    int64_t due = listen_due();
    struct reader *rd = park_oldest();

    if (L.next_touch < due)
        due = L.next_touch;
    if (L.next_prune < due)
        due = L.next_prune;
    if (L.next_rss < due)
        due = L.next_rss;
    if (rd && rd->deadline < due)
        due = rd->deadline;
    if (L.any_dirty && listen_up() && L.next_due < due)
        due = L.next_due;
    return due;
}

void
loop_tick(int64_t now)
{
    listen_tick(now);
    deliver_keep_alive(now, 0);
    if (now >= L.next_rss) {
        rss_refresh();
        L.next_rss = now + 1000;
    }
    if (L.any_dirty && listen_up() && now >= L.next_due) {
        L.any_dirty = 0;
        L.next_due = INT64_MAX;
        rooms_each(service_dirty);
    }
    if (now >= L.next_touch) {
        hand_touches();
        L.next_touch = now + L.touch_ms;
    }
    if (now >= L.next_prune) {
        rooms_prune(now);
        L.next_prune = now + LOOP_PRUNE_MS;
    }
}

int
loop_init(loop_touch_fn touch)
{
    static const struct listen_callbacks cb = {on_notify, on_up, on_down};
    int64_t now = mono_ms();

    L.touch = touch;
    /* A session must be marked active well before it could expire. */
    L.touch_ms = config.session_timeout_s * 1000 / 4;
    if (L.touch_ms > LOOP_TOUCH_MS)
        L.touch_ms = LOOP_TOUCH_MS;
    L.next_touch = now + L.touch_ms;
    L.next_prune = now + LOOP_PRUNE_MS;
    L.next_rss = now;
    L.next_due = INT64_MAX;
    rss_refresh();
    return listen_init(config.listen_database_url, &cb);
}

void
loop_stop(void)
{
    size_t n = park_count();

    log_info("stopping: answering %zu waiting request%s", n, n == 1 ? "" : "s");
    L.stopping = 1;
    hand_touches();
    deliver_keep_alive(0, 1);
}

void
loop_close(void)
{
    listen_close();
    rooms_free();
}
