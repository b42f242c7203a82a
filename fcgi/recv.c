/* recv.c -- every /recv and /events of the worker, decided on the loop
 * thread.
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
 * and a flood no longer makes every reader poll once per message. A quiet
 * room answers at once.
 */
#include "recv.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "notify.h"
#include "deliver.h"
#include "park.h"
#include "private.h"
#include "rooms.h"
#include "stats.h"
#include "stream.h"
#include "util.h"
#include "views.h"

#define RECV_PAGE DELIVER_PAGE
#define RECV_TOUCH_MS 5000   /* keep-alives are handed on this often */
#define RECV_PRUNE_MS 10000  /* idle rooms are looked for this often */
#define RECV_RETRY_MS 1000   /* a room whose query failed waits this long */
#define RECV_UNASKED_MAX 100 /* kept of a room only notifications bring */
/* The staleness bound: a window answers alone only this long after its
 * room was last heard of. */
#define RECV_HEARD_MS 1000

static struct {
    recv_touch_fn touch;
    char **touches; /* owned: ids of readers answered without waiting */
    size_t ntouches, touch_cap;
    int any_dirty;
    int64_t next_due; /* the earliest quiet_until of a marked room */
    int64_t next_touch, next_prune, next_rss;
    int touch_ms;
    int stopping;
} receiver;

/* A query in flight for a room. */
struct fetch {
    struct room *room;
    int64_t since;
    int limit;
};

static void service(struct room *rm);
static void fetch(struct room *rm, int64_t since, int limit);

/* Whether rm's window may answer a reader without asking first: a window
 * is only as good as the notifications that kept it, and a connection
 * that stopped answering is only found out within twice the database
 * bound. In a quiet room, a reader arriving behind the head then costs a
 * query, at most one a bound. */
static int
heard_lately(const struct room *rm, int64_t now)
{
    return now - rm->heard <= RECV_HEARD_MS;
}

static void
mark_dirty(struct room *rm)
{
    if (rm->nreaders) {
        rm->dirty = 1;
        receiver.any_dirty = 1;
        if (rm->quiet_until < receiver.next_due)
            receiver.next_due = rm->quiet_until;
    }
}

static void
touch_later(const char *id)
{
    if (!id)
        return;
    if (receiver.ntouches == receiver.touch_cap) {
        receiver.touch_cap = receiver.touch_cap ? 2 * receiver.touch_cap : 64;
        receiver.touches = xrealloc(
            receiver.touches, receiver.touch_cap * sizeof(*receiver.touches));
    }
    receiver.touches[receiver.ntouches++] = xstrdup(id);
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
        rm->quiet_until = mono_ms() + RECV_RETRY_MS;
        mark_dirty(rm);
        free(f);
        return;
    }
    views_prepare(list); /* it stays in the window for the next replies */
    rm->heard = mono_ms();
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
        fetch(rm, missing, RECV_PAGE);
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
    if (notify_recv(rm->name, since, limit, on_fetched, f) < 0) {
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
    if (!notify_up() || now < rm->quiet_until) {
        mark_dirty(rm); /* served when due, or once listening again */
        return;
    }
    rm->dirty = 0;
    if (!rm->known || (rc->valid && rc->head < rm->head) ||
        (rc->valid && !heard_lately(rm, now))) {
        int64_t since = rc->valid ? rc->head : INT64_MAX;

        for (struct reader *rd = rm->readers; !rc->valid && rd; rd = rd->next)
            if (rd->since < since)
                since = rd->since;
        fetch(rm, since, rc->valid ? RECENT_MAX : RECV_PAGE);
        return;
    }
    missing = deliver_window(rm, &behind);
    if (missing >= 0)
        fetch(rm, missing, RECV_PAGE);
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

/* A batch that follows exactly on what the window holds (its prev is the
 * head the window ends at, and no query is in flight that could answer
 * out of turn) is appended as a query's answer would be. A batch is the
 * whole of what its room committed after prev, so it also starts a window
 * for a room this worker knows nothing of (never asked about, or not
 * since the LISTEN connection was replaced): a reader that comes here
 * later at prev or after needs no query. Any other notification only says
 * the head moved, and the room is read. */
static void
on_notify(const char *room, int64_t head, int64_t prev, struct msg_list *batch)
{
    struct room *rm = rooms_find(room);
    int follows, starts;

    if (!rm && !batch)
        return; /* nobody here reads that room */
    if (!rm)
        rm = rooms_get(room); /* never used: pruned soon if nobody asks */
    follows = rm->known && rm->recent.valid && rm->head == prev &&
              rm->recent.head == prev;
    starts = !rm->known && !rm->recent.valid;
    if (batch && !rm->querying && head > prev && (follows || starts)) {
        views_prepare(batch);
        rooms_learn(rm, prev, batch, head, RECENT_MAX);
        if (!rm->used) /* memory for rooms nobody has asked about */
            recent_trim(&rm->recent, RECV_UNASKED_MAX);
        stats_add(&stats_all->notify_appended, 1);
    } else {
        msg_list_free(batch);
        if (rm->known && head > rm->head)
            rm->head = head;
    }
    rm->heard = mono_ms();
    if (!rm->notified_us && rm->nreaders)
        rm->notified_us = stats_now_us();
    mark_dirty(rm);
}

/* The LISTEN connection is lost or given up: notifications may be missed
 * from now on, so neither the head nor the window of any room can be
 * trusted until a query has read them again. A window kept here would
 * answer every fresh reader with an old room for as long as nobody parks
 * in it. */
static void
forget(struct room *rm)
{
    rm->known = 0;
    recent_release(&rm->recent);
}

/* After a new LISTEN every room with readers is read again at once. */
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
    rooms_each(forget);
}

/* A room has become private: each of its readers is asked again whether
 * the room is its own. A /recv that is not gets 403; a stream ends, and
 * when its client comes back it gets 403 too. */
static void
on_private(const char *room)
{
    struct room *rm = rooms_find(room);
    struct reader *rd, *next;

    for (rd = rm ? rm->readers : NULL; rd; rd = next) {
        next = rd->next;
        if (auth_may_use(rd->req, room) == 1)
            continue;
        if (rd->stream)
            park_end(rd);
        else
            park_error(rd, 403, AUTH_NOT_YOURS);
    }
}

static void
on_private_rooms(char *const *names, size_t n)
{
    private_replace(names, n, on_private);
}

/* --- requests ------------------------------------------------------------ */

void
recv_recv(struct req *r, const char *room, int64_t since, const char *id)
{
    struct room *rm = rooms_get(room);
    struct reader *rd = park_new(r, rm, since, id);
    struct msg_list view;
    int64_t now = mono_ms();

    rm->used = now;
    if (receiver.stopping) {
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
    notify_drain();
    /* A window behind a known head waits for the catch-up, which serves
     * every reader of the room, instead of giving an answer already old. */
    if ((!rm->known || rm->recent.head >= rm->head) && heard_lately(rm, now) &&
        recent_slice(&rm->recent, since, RECV_PAGE, &view) == 0 && view.len) {
        /* Right after a fan-out (a busy room), a reader less than a page
         * behind waits for the next one: its news and what comes meanwhile
         * then travel in one reply, not one each. */
        if (rm->known && now < rm->quiet_until && view.len < RECV_PAGE) {
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
recv_events(struct req *r, const char *room, int64_t since, const char *id)
{
    struct room *rm = rooms_get(room);
    struct reader *rd = park_new(r, rm, since, id);

    rd->stream = 1;
    rm->used = mono_ms();
    if (stream_open(r) < 0) {
        park_drop(rd);
        return;
    }
    if (receiver.stopping) {
        park_end(rd); /* its client asks again, elsewhere */
        return;
    }
    park_wait(rd, config.recv_timeout_ms);
    if (rm->known && since >= rm->head)
        return;
    notify_drain();
    mark_dirty(rm);
    service(rm);
}

int
recv_holds_room(const char *room)
{
    return rooms_find(room) != NULL;
}

int
recv_healthy(void)
{
    return notify_healthy();
}

/* --- timers -------------------------------------------------------------- */

/* Hands on the keep-alives gathered since the last time, plus one for
 * every session waiting here. */
static void
hand_touches(void)
{
    for (struct reader *rd = park_oldest(); rd; rd = park_next(rd))
        touch_later(rd->id);
    if (receiver.ntouches)
        receiver.touch(receiver.touches, receiver.ntouches);
    else
        free(receiver.touches);
    receiver.touches = NULL;
    receiver.ntouches = receiver.touch_cap = 0;
}

int64_t
recv_due(void)
{
    int64_t due = notify_due();
    struct reader *rd = park_oldest();

    if (receiver.next_touch < due)
        due = receiver.next_touch;
    if (receiver.next_prune < due)
        due = receiver.next_prune;
    if (receiver.next_rss < due)
        due = receiver.next_rss;
    if (rd && rd->deadline < due)
        due = rd->deadline;
    if (receiver.any_dirty && notify_up() && receiver.next_due < due)
        due = receiver.next_due;
    return due;
}

void
recv_tick(int64_t now)
{
    notify_tick(now);
    deliver_keep_alive(now, 0);
    if (now >= receiver.next_rss) {
        rss_refresh();
        receiver.next_rss = now + 1000;
    }
    if (receiver.any_dirty && notify_up() && now >= receiver.next_due) {
        receiver.any_dirty = 0;
        receiver.next_due = INT64_MAX;
        rooms_each(service_dirty);
    }
    if (now >= receiver.next_touch) {
        hand_touches();
        receiver.next_touch = now + receiver.touch_ms;
    }
    if (now >= receiver.next_prune) {
        rooms_prune(now);
        receiver.next_prune = now + RECV_PRUNE_MS;
    }
}

int
recv_init(recv_touch_fn touch)
{
    static const struct notify_callbacks cb = {on_notify, on_up, on_down,
                                               on_private_rooms};
    int64_t now = mono_ms();

    receiver.touch = touch;
    /* A session must be marked active well before it could expire. */
    receiver.touch_ms = config.session_timeout_s * 1000 / 4;
    if (receiver.touch_ms > RECV_TOUCH_MS)
        receiver.touch_ms = RECV_TOUCH_MS;
    receiver.next_touch = now + receiver.touch_ms;
    receiver.next_prune = now + RECV_PRUNE_MS;
    receiver.next_rss = now;
    receiver.next_due = INT64_MAX;
    rss_refresh();
    return notify_init(config.listen_database_url, &cb);
}

void
recv_stop(void)
{
    size_t n = park_count();

    log_info("stopping: answering %zu waiting request%s", n, n == 1 ? "" : "s");
    receiver.stopping = 1;
    hand_touches();
    deliver_keep_alive(0, 1);
}

void
recv_close(void)
{
    notify_close();
    rooms_free();
    private_free();
}
