/* loop.c -- the worker's event loop: parked /recv requests, timers, and the
 * one PostgreSQL connection that LISTENs.
 *
 * Every /recv of the worker is decided on this one thread, which is what
 * makes parking safe: the loop knows, per room, the newest timestamp "head"
 * that it has seen committed (from a query or a NOTIFY payload, both only
 * while LISTENing). A request whose cursor is at or past head is parked
 * without a query: any later commit in the room sends a NOTIFY that this same
 * thread handles after the park, so no wake-up can fall in between.
 * Notifications libpq reads while this thread runs another query on the same
 * connection are collected after every round, since epoll cannot see them.
 *
 * Each room keeps a window of its newest messages (recent.c). A cursor
 * behind head is answered from the window, or else from one query. On NOTIFY
 * the rooms concerned are marked; once the notifications are drained, each
 * such room's window is brought up to date with one query, and its parked
 * requests are answered from it, grouped by cursor, one serialised body per
 * group.
 *
 * A busy room is fanned out at most once per PGCHAT_BATCH_MS (100 ms): what
 * comes meanwhile, and readers that poll again meanwhile, wait for the next
 * one. Each reply then carries more messages, and a flood of messages no
 * longer makes every reader poll once per message, which left no room in
 * nginx for the sends themselves (make bench, 1000 readers and 8 senders
 * flat out: about 800 messages a second against 190, every reader getting
 * every one). A quiet room answers at once, as before.
 */
#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "config.h"
#include "recent.h"
#include "routes.h"
#include "store.h"
#include "util.h"
#include "views.h"

#define LOOP_PAGE 200          /* messages in one reply at the most */
#define LOOP_BUCKETS 1024      /* room hash table */
#define LOOP_TOUCH_MS 5000     /* keep-alives are written at least this often */
#define LOOP_RECONNECT_MS 1000 /* a lost connection is retried this often */
#define LOOP_ROOM_IDLE_MS 300000 /* a room nobody waits in is forgotten */
#define LOOP_EVENTS 512
#define LOOP_EXPIRE_MS 60000 /* old messages are deleted this often */
#define LOOP_RESTARTING "Server is restarting, try again"

struct room {
    char *name;
    struct recent recent; /* the newest messages, for readers close behind */
    int64_t head;         /* newest timestamp known to be committed */
    int known;            /* head is trustworthy: learnt while listening */
    int dirty;            /* parked requests may be behind head */
    struct req *parked;   /* doubly linked through next/prev */
    size_t nparked;
    int64_t used;        /* mono_ms() of the last request */
    int64_t quiet_until; /* no fan-out before this mono_ms() (batching) */
    struct room *hnext;
};

static struct {
    int epfd, evfd, sigfd, pgfd;
    struct store *st;

    pthread_mutex_t mu; /* guards inbox and touches */
    struct req *inbox, *inbox_tail;
    char **touches;
    size_t ntouches, touch_cap;

    struct room *rooms[LOOP_BUCKETS];
    struct req *oldest, *newest; /* parked, by deadline */
    _Atomic size_t nparked;
    int any_dirty;
    int64_t next_due; /* the earliest quiet_until of a dirty room */
    int stopping;
    int closed; /* loop_close() ran: submissions are refused */
    int64_t next_touch, next_sweep, next_rss, next_reconnect, next_expire;
    int touch_ms; /* keep-alives are written this often */
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .pgfd = -1};

/* epoll tags for the loop's own descriptors; parked requests use their
 * struct req as tag. */
static char tag_inbox, tag_signal, tag_pg;

static int64_t
min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static unsigned
hash(const char *s)
{
    unsigned h = 5381;

    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h % LOOP_BUCKETS;
}

static struct room *
room_find(const char *name)
{
    for (struct room *rm = L.rooms[hash(name)]; rm; rm = rm->hnext)
        if (strcmp(rm->name, name) == 0)
            return rm;
    return NULL;
}

static struct room *
room_get(const char *name)
{
    struct room *rm = room_find(name);
    unsigned h;

    if (rm)
        return rm;
    h = hash(name);
    rm = xcalloc(1, sizeof(*rm));
    rm->name = xstrdup(name);
    rm->hnext = L.rooms[h];
    L.rooms[h] = rm;
    return rm;
}

/* Forgets rooms nobody has asked about for a while, so that the table stays
 * the size of the rooms in use. */
static void
rooms_prune(int64_t now)
{
    for (unsigned h = 0; h < LOOP_BUCKETS; h++) {
        struct room **pp = &L.rooms[h];

        while (*pp) {
            struct room *rm = *pp;

            if (rm->nparked == 0 && now - rm->used > LOOP_ROOM_IDLE_MS) {
                *pp = rm->hnext;
                recent_release(&rm->recent);
                free(rm->name);
                free(rm);
            } else {
                pp = &rm->hnext;
            }
        }
    }
}

/* --- parking ----------------------------------------------------------- */

static int
park(struct room *rm, struct req *r)
{
    struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = r};

    /* Only the peer's hang-up is watched: the rest of the request's input,
     * if any, is of no interest and would wake the loop for nothing. */
    if (epoll_ctl(L.epfd, EPOLL_CTL_ADD, req_fd(r), &ev) < 0) {
        log_error("cannot watch a parked request: %s", strerror(errno));
        return -1;
    }
    r->parked_in = rm;
    r->prev = NULL;
    r->next = rm->parked;
    if (rm->parked)
        rm->parked->prev = r;
    rm->parked = r;
    rm->nparked++;

    r->deadline = mono_ms() + config.recv_timeout_ms;
    r->tnext = NULL;
    r->tprev = L.newest;
    if (L.newest)
        L.newest->tnext = r;
    else
        L.oldest = r;
    L.newest = r;
    L.nparked++;
    return 0;
}

/* Every unparked request is answered or dropped at once; its connection
 * stays open for the next request, which the server thread reads. */
static void
unpark(struct req *r)
{
    struct room *rm = r->parked_in;

    epoll_ctl(L.epfd, EPOLL_CTL_DEL, req_fd(r), NULL);
    if (r->prev)
        r->prev->next = r->next;
    else
        rm->parked = r->next;
    if (r->next)
        r->next->prev = r->prev;
    rm->nparked--;

    if (r->tprev)
        r->tprev->tnext = r->tnext;
    else
        L.oldest = r->tnext;
    if (r->tnext)
        r->tnext->tprev = r->tprev;
    else
        L.newest = r->tprev;
    L.nparked--;
    r->parked_in = NULL;
}

/* --- the listening connection ------------------------------------------ */

static void
mark_dirty(struct room *rm)
{
    if (rm->nparked) {
        rm->dirty = 1;
        L.any_dirty = 1;
    }
}

/* After a (re)connection nothing learnt before can be trusted: notifications
 * may have been missed. Every room with parked requests is read again. */
static void
on_connected(void)
{
    int fd = store_socket(L.st);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_pg};

    if (L.pgfd >= 0)
        epoll_ctl(L.epfd, EPOLL_CTL_DEL, L.pgfd, NULL);
    L.pgfd = -1;
    if (epoll_ctl(L.epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
        L.pgfd = fd;
    else
        log_error("cannot watch the listening connection: %s", strerror(errno));
    for (unsigned h = 0; h < LOOP_BUCKETS; h++)
        for (struct room *rm = L.rooms[h]; rm; rm = rm->hnext) {
            rm->known = 0;
            mark_dirty(rm);
        }
}

static void
on_disconnected(void)
{
    if (L.pgfd >= 0)
        epoll_ctl(L.epfd, EPOLL_CTL_DEL, L.pgfd, NULL);
    L.pgfd = -1;
    for (unsigned h = 0; h < LOOP_BUCKETS; h++)
        for (struct room *rm = L.rooms[h]; rm; rm = rm->hnext)
            rm->known = 0;
}

/* Returns 0 when the connection is up (reconnecting if it must), else -1. */
static int
db_ready(void)
{
    int rc = store_connect(L.st);

    if (rc == 1)
        on_connected();
    if (rc < 0 && L.pgfd >= 0)
        on_disconnected();
    return rc < 0 ? -1 : 0;
}

static void
on_notify(const char *room, int64_t head, void *arg)
{
    struct room *rm = room_find(room);

    (void)arg;
    if (!rm)
        return; /* nobody here reads that room */
    if (rm->known && head > rm->head)
        rm->head = head;
    mark_dirty(rm);
}

/* Reads at most limit messages after since; learns the room's head on the
 * way (*head gets it too). Returns NULL when the database cannot answer. */
static struct msg_list *
query(struct room *rm, int64_t since, int limit, int64_t *head)
{
    struct msg_list *list;

    if (db_ready() < 0)
        return NULL;
    list = store_recv(L.st, rm->name, since, limit, head);
    if (!list) {
        db_ready(); /* notices a lost connection */
        return NULL;
    }
    if (!rm->known || *head > rm->head)
        rm->head = *head;
    rm->known = 1;
    return list;
}

/* Takes list, the answer of query(rm, since, LOOP_PAGE): keeps it as the
 * room's window when it reaches the room's head and the window it replaces
 * did not reach as far. */
static void
remember(struct room *rm, int64_t since, struct msg_list *list, int64_t head)
{
    struct recent *rc = &rm->recent;
    int complete =
        !list->gap && since <= head &&
        (list->len < LOOP_PAGE || list->items[list->len - 1].ts == head);

    if (complete && (!rc->valid || head > rc->head ||
                     (head == rc->head && since < rc->floor)))
        recent_set(rc, since, list, head);
    else
        msg_list_free(list);
}

/* Brings the room's window up to its head with one query. Returns 0, or -1
 * when the database cannot answer. */
static int
catch_up(struct room *rm)
{
    struct recent *rc = &rm->recent;
    struct msg_list *list;
    int64_t head;

    if (!rc->valid || !rm->known || rc->head >= rm->head)
        return 0;
    list = query(rm, rc->head, RECENT_MAX, &head);
    if (!list)
        return -1;
    if (list->gap) {
        /* More than the window has come: it starts again from a query. */
        recent_release(rc);
        msg_list_free(list);
    } else {
        int64_t last = list->len ? list->items[list->len - 1].ts : head;

        recent_append(rc, list, list->len < RECENT_MAX ? head : last);
    }
    return 0;
}

/* --- answering --------------------------------------------------------- */

/* Keep-alives: a parked request's session is marked active by every
 * flush_touches() while it waits, so only an answer given at once, to a
 * reader that may never wait, marks it here. A fan-out to thousands of
 * readers then costs no copy of their ids. */
static void
reply_messages(struct req *r, const char *body, size_t len)
{
    req_reply(r, 200, body, len);
}

static void
reply_now(struct req *r, const char *body, size_t len)
{
    if (r->id)
        loop_touch(r->id);
    req_reply(r, 200, body, len);
}

static void
reply_ping(struct req *r)
{
    size_t len;
    char *body = views_messages(NULL, rss_current(), 1, &len);

    reply_messages(r, body, len);
    free(body);
}

/* Answers a request that did not wait. */
static void
reply_list(struct req *r, const struct msg_list *list)
{
    size_t len;
    char *body = views_messages(list, rss_current(), 0, &len);

    reply_now(r, body, len);
    free(body);
}

static void
handle_recv(struct req *r)
{
    struct room *rm = room_get(r->room);
    struct msg_list *list, view;
    int64_t head, since;

    int64_t now = mono_ms();

    rm->used = now;
    if (L.stopping) {
        /* Nobody would wake it: the client just asks again, elsewhere. */
        reply_ping(r);
        return;
    }
    if (rm->known && r->since >= rm->head) {
        if (park(rm, r) < 0)
            routes_error(r, 503, "Cannot wait, try again");
        return;
    }
    /* A window behind the head is brought up first: one query that serves
     * every reader of the room, instead of an answer that is already old. */
    if (catch_up(rm) == 0 &&
        recent_slice(&rm->recent, r->since, LOOP_PAGE, &view) == 0 &&
        view.len) {
        /* Right after a fan-out (a busy room), a reader less than a page
         * behind waits for the next one: its news and what comes meanwhile
         * then travel in one reply, not one each. */
        if (rm->known && now < rm->quiet_until && view.len < LOOP_PAGE) {
            if (park(rm, r) < 0)
                routes_error(r, 503, "Cannot wait, try again");
            else
                mark_dirty(rm);
            return;
        }
        reply_list(r, &view);
        return;
    }
    list = query(rm, r->since, LOOP_PAGE, &head);
    if (!list) {
        routes_error(r, 503, ROUTES_DB_DOWN);
        return;
    }
    if (list->len == 0) {
        msg_list_free(list);
        if (park(rm, r) < 0)
            routes_error(r, 503, "Cannot wait, try again");
        return;
    }
    since = r->since; /* r is gone once answered */
    reply_list(r, list);
    remember(rm, since, list, head);
}

static int
by_since(const void *a, const void *b)
{
    const struct req *x = *(struct req *const *)a;
    const struct req *y = *(struct req *const *)b;

    return (x->since > y->since) - (x->since < y->since);
}

/* Answers the parked requests of rm that are behind its head: one body per
 * distinct cursor, from the room's window after one query that brings it up
 * to date, or from a query of its own for a cursor before the window. */
static void
fan_out(struct room *rm)
{
    struct req **v;
    size_t n = 0;

    rm->dirty = 0;
    if (catch_up(rm) < 0) {
        rm->dirty = 1; /* read again once the database is back */
        return;
    }
    v = xcalloc(rm->nparked, sizeof(*v));
    for (struct req *r = rm->parked; r; r = r->next)
        if (!rm->known || r->since < rm->head)
            v[n++] = r;
    qsort(v, n, sizeof(*v), by_since);
    for (size_t i = 0; i < n;) {
        int64_t since = v[i]->since, head;
        struct msg_list view, *list = NULL;
        const struct msg_list *answer = &view;
        size_t j = i, len;
        char *body;

        while (j < n && v[j]->since == since)
            j++;
        if (recent_slice(&rm->recent, since, LOOP_PAGE, &view) < 0 ||
            view.len == 0) {
            list = query(rm, since, LOOP_PAGE, &head);
            if (!list) {
                rm->dirty = 1;
                break;
            }
            answer = list;
        }
        if (answer->len) {
            body = views_messages(answer, rss_current(), 0, &len);
            for (size_t k = i; k < j; k++) {
                unpark(v[k]);
                reply_messages(v[k], body, len);
            }
            free(body);
        }
        if (list)
            remember(rm, since, list, head);
        i = j;
    }
    free(v);
}

static void
fan_out_dirty(int64_t now)
{
    if (!L.any_dirty)
        return;
    L.any_dirty = 0;
    L.next_due = INT64_MAX;
    for (unsigned h = 0; h < LOOP_BUCKETS; h++)
        for (struct room *rm = L.rooms[h]; rm; rm = rm->hnext) {
            if (!rm->dirty)
                continue;
            if (now < rm->quiet_until) {
                L.any_dirty = 1;
                L.next_due = min64(L.next_due, rm->quiet_until);
                continue;
            }
            fan_out(rm);
            rm->quiet_until = now + config.batch_ms;
            if (rm->dirty) {
                L.any_dirty = 1;
                L.next_due = now;
            }
        }
}

/* Answers parked requests with a ping: those whose deadline is before
 * until, or all of them. */
static void
ping_until(int64_t until, int all)
{
    char *body = NULL;
    size_t len = 0;

    while (L.oldest && (all || L.oldest->deadline <= until)) {
        struct req *r = L.oldest;

        if (!body)
            body = views_messages(NULL, rss_current(), 1, &len);
        unpark(r);
        reply_messages(r, body, len);
    }
    free(body);
}

/* --- the inbox and keep-alives ----------------------------------------- */

/* Makes the loop's next epoll_wait() return for the inbox. */
static void
wake_loop(void)
{
    uint64_t one = 1;

    if (write(L.evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_error("cannot wake the event loop: %s", strerror(errno));
}

void
loop_submit(struct req *r)
{
    int wake;

    r->next = NULL;
    pthread_mutex_lock(&L.mu);
    if (L.closed) {
        pthread_mutex_unlock(&L.mu);
        routes_error(r, 503, LOOP_RESTARTING);
        return;
    }
    /* Only the first request into an empty inbox wakes the loop: the loop
     * takes the whole inbox at once, so later ones ride along, and a burst
     * of polls costs one write(2) instead of one each. */
    wake = L.inbox == NULL;
    if (L.inbox_tail)
        L.inbox_tail->next = r;
    else
        L.inbox = r;
    L.inbox_tail = r;
    pthread_mutex_unlock(&L.mu);
    if (wake)
        wake_loop();
}

size_t
loop_parked(void)
{
    return L.nparked;
}

void
loop_touch(const char *token)
{
    pthread_mutex_lock(&L.mu);
    if (L.ntouches == L.touch_cap) {
        L.touch_cap = L.touch_cap ? 2 * L.touch_cap : 64;
        L.touches = xrealloc(L.touches, L.touch_cap * sizeof(*L.touches));
    }
    L.touches[L.ntouches++] = xstrdup(token);
    pthread_mutex_unlock(&L.mu);
}

/* Returns the whole inbox, oldest first; with close, every later
 * submission is refused (loop_submit answers it with 503). */
static struct req *
take_inbox(int close)
{
    struct req *list;

    pthread_mutex_lock(&L.mu);
    if (close)
        L.closed = 1;
    list = L.inbox;
    L.inbox = L.inbox_tail = NULL;
    pthread_mutex_unlock(&L.mu);
    return list;
}

static void
drain_inbox(void)
{
    uint64_t count;
    struct req *list;

    if (read(L.evfd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        log_error("cannot read the event counter: %s", strerror(errno));
    list = take_inbox(0);
    while (list) {
        struct req *r = list;

        list = r->next;
        handle_recv(r);
    }
}

/* Writes the keep-alives gathered since the last time, plus one for every
 * session waiting here, in one statement. */
static void
flush_touches(void)
{
    char **v;
    size_t n, cap;

    pthread_mutex_lock(&L.mu);
    v = L.touches;
    n = L.ntouches;
    cap = L.touch_cap;
    L.touches = NULL;
    L.ntouches = L.touch_cap = 0;
    pthread_mutex_unlock(&L.mu);
    for (struct req *r = L.oldest; r; r = r->tnext) {
        if (!r->id)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            v = xrealloc(v, cap * sizeof(*v));
        }
        v[n++] = xstrdup(r->id);
    }
    if (n && db_ready() == 0 &&
        store_touch(L.st, (const char *const *)v, n) < 0)
        db_ready();
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void
sweep(int64_t now)
{
    long long n;

    if (db_ready() < 0)
        return;
    n = store_sweep(L.st, config.session_timeout_s);
    if (n < 0)
        db_ready();
    else if (n > 0)
        log_info("ended %lld idle session%s", n, n == 1 ? "" : "s");
    if (config.retention_days && now >= L.next_expire) {
        L.next_expire = now + LOOP_EXPIRE_MS;
        n = store_expire(L.st, config.retention_days);
        if (n < 0)
            db_ready();
        else if (n > 0)
            log_info("deleted %lld message%s older than %d days", n,
                     n == 1 ? "" : "s", config.retention_days);
    }
}

/* --- timers and the loop itself ---------------------------------------- */

static int
next_timeout(int64_t now)
{
    int64_t next = min64(min64(L.next_touch, L.next_sweep), L.next_rss);

    if (L.oldest)
        next = min64(next, L.oldest->deadline);
    if (L.pgfd < 0 || L.any_dirty)
        next = min64(next, L.next_reconnect);
    /* Rooms marked while connected are read at once; marked while the
     * database is away, at the next reconnection attempt. */
    if (L.any_dirty && L.pgfd >= 0)
        next = min64(next, L.next_due);
    return next <= now ? 0 : (int)(next - now);
}

static void
run_timers(int64_t now)
{
    ping_until(now, 0);
    if (now >= L.next_rss) {
        rss_refresh();
        L.next_rss = now + 1000;
    }
    if ((L.pgfd < 0 || L.any_dirty) && now >= L.next_reconnect) {
        L.next_reconnect = now + LOOP_RECONNECT_MS;
        db_ready();
    }
    if (now >= L.next_touch) {
        flush_touches();
        L.next_touch = now + L.touch_ms;
    }
    if (now >= L.next_sweep) {
        sweep(now);
        rooms_prune(now);
        /* Jitter spreads the workers' sweeps apart. */
        L.next_sweep = now + config.sweep_interval_ms +
                       rand() % (config.sweep_interval_ms / 4 + 1);
    }
}

static void
on_signal(void)
{
    struct signalfd_siginfo si;

    if (read(L.sigfd, &si, sizeof(si)) != sizeof(si))
        return;
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
        size_t n = L.nparked;

        log_info("stopping: answering %zu waiting request%s", n,
                 n == 1 ? "" : "s");
        L.stopping = 1;
    }
}

static void
dispatch(struct epoll_event *ev)
{
    void *tag = ev->data.ptr;

    if (tag == &tag_inbox) {
        drain_inbox();
    } else if (tag == &tag_signal) {
        on_signal();
    } else if (tag == &tag_pg) {
        if (store_notifies(L.st, on_notify, NULL) < 0)
            on_disconnected();
    } else {
        struct req *r = tag; /* a parked client went away */

        unpark(r);
        req_drop(r);
    }
}

int
loop_init(void)
{
    struct epoll_event ev = {.events = EPOLLIN};
    sigset_t mask;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    L.epfd = epoll_create1(EPOLL_CLOEXEC);
    L.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    L.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (L.epfd < 0 || L.evfd < 0 || L.sigfd < 0) {
        log_error("cannot set up the event loop: %s", strerror(errno));
        return -1;
    }
    ev.data.ptr = &tag_inbox;
    epoll_ctl(L.epfd, EPOLL_CTL_ADD, L.evfd, &ev);
    ev.data.ptr = &tag_signal;
    epoll_ctl(L.epfd, EPOLL_CTL_ADD, L.sigfd, &ev);

    L.st = store_new(config.listen_database_url, 1);
    if (store_socket(L.st) >= 0)
        on_connected();
    rss_refresh();
    return 0;
}

int
loop_run(void)
{
    struct epoll_event events[LOOP_EVENTS];
    int64_t now = mono_ms();

    /* A session must be marked active well before it could expire. */
    L.touch_ms = min64(LOOP_TOUCH_MS, config.session_timeout_s * 1000 / 4);
    L.next_touch = now + L.touch_ms;
    L.next_sweep = now + rand() % (config.sweep_interval_ms + 1);
    L.next_rss = now + 1000;
    L.next_reconnect = now;
    while (!L.stopping) {
        int n = epoll_wait(L.epfd, events, LOOP_EVENTS, next_timeout(now));

        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait failed: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++)
            dispatch(&events[i]);
        now = mono_ms();
        run_timers(now);
        fan_out_dirty(now);
        /* Every query on this connection may have read notifications into
         * libpq's queue, where epoll cannot see them: collect them now. */
        if (L.pgfd >= 0 && store_notifies(L.st, on_notify, NULL) < 0)
            on_disconnected();
    }
    return 0;
}

void
loop_finish(void)
{
    /* drain_inbox() reads the counter first: make sure there is one. */
    wake_loop();
    drain_inbox();
    ping_until(0, 1);
    flush_touches();
}

void
loop_close(void)
{
    struct req *list;

    list = take_inbox(1);
    while (list) {
        struct req *r = list;

        list = r->next;
        routes_error(r, 503, LOOP_RESTARTING);
    }
    store_free(L.st);
    L.st = NULL;
}
