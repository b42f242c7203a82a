/* notify.c -- the worker's LISTEN connection to PostgreSQL: its life, its
 * NOTIFYs, and the queries the event loop runs on it, one at a time, never
 * waiting.
 *
 * The connection is driven by epoll on its socket (pg.h): connecting, the
 * setup (PREPARE and LISTEN), queries and their answers all happen in
 * steps, so keep-alives, hang-ups, timers and signals are served while a call
 * is in flight. Every call, the connection included, has PGCHAT_DB_TIMEOUT to
 * answer; one that has not is given up, the connection closed and replaced
 * with back-off. An idle connection is checked with a trivial query once per
 * timeout, so a silently dead one is replaced within about twice the bound.
 * Notifications that libpq reads along the way are collected after every
 * step.
 */
#include "notify.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ev.h"
#include "pg.h"
#include "stats.h"
#include "store.h"
#include "util.h"

#define NOTIFY_BACKOFF_MIN_MS 250
#define NOTIFY_BACKOFF_MAX_MS 5000

enum phase { DOWN, CONNECTING, SETUP, READY };
enum call { NONE, CALL_SETUP, CALL_PRIVATE, CALL_RECV, CALL_CHECK };

struct query {
    char *room; /* owned */
    int64_t since;
    int limit;
    notify_fn fn;
    void *arg;
    struct query *next;
};

static struct {
    struct pg *pg;
    struct notify_callbacks cb;
    struct ev_watch w;
    int watched;     /* w is in epoll */
    uint32_t events; /* what it is watched for */
    enum phase phase;
    enum call call;  /* in flight */
    int64_t sent_at; /* mono_ms() the call in flight (or connect) began */
    int64_t idle_since;
    int64_t retry_at; /* DOWN: when to connect again */
    int backoff_ms;
    int kick;         /* queries wait to be sent */
    int want_private; /* the private rooms are to be read (again) */
    struct query *head, *tail;
} listener;

static void on_event(struct ev_watch *w, uint32_t events);

static void
unwatch(void)
{
    if (listener.watched)
        ev_del(&listener.w);
    listener.watched = 0;
}

/* Watches the connection's socket for what libpq waits for. While it
 * connects, libpq may close its socket and open another (the next host of
 * a multi-host URL, or the next address of a name), perhaps under the same
 * number: epoll forgot the closed one, so each step watches afresh. */
static void
rewatch(enum pg_wait wait)
{
    uint32_t events = EV_IN;

    if (wait & PG_WAIT_WRITE)
        events |= EV_OUT;
    if (listener.phase == CONNECTING ||
        (listener.watched && listener.w.fd != pg_fd(listener.pg)))
        unwatch();
    if (listener.watched && events == listener.events)
        return;
    listener.w.fd = pg_fd(listener.pg);
    listener.w.fn = on_event;
    if ((listener.watched ? ev_mod(&listener.w, events)
                          : ev_add(&listener.w, events)) == 0) {
        listener.watched = 1;
        listener.events = events;
    } else {
        log_error("cannot watch the listening connection");
    }
}

static void
collect_notifies(void)
{
    char *payload;

    while ((payload = pg_notify(listener.pg))) {
        struct store_notice n;

        if (store_notify_parse(payload, &n) < 0) {
            /* not one of ours */
        } else if (n.private_rooms) {
            listener.want_private = 1;
            listener.kick = 1;
        } else {
            if (n.batch)
                stats_add(&stats_all->notify_batches, 1);
            listener.cb.notify(n.room, n.head, n.prev, n.batch);
        }
        free(payload);
    }
}

static struct query *
dequeue(void)
{
    struct query *q = listener.head;

    if (q) {
        listener.head = q->next;
        if (!listener.head)
            listener.tail = NULL;
    }
    return q;
}

static void
query_free(struct query *q)
{
    free(q->room);
    free(q);
}

/* The connection is lost or given up: every query waiting fails, and a new
 * connection is tried after the back-off. */
static void
fail(const char *why)
{
    int was_up = listener.phase == READY;
    struct query *q;

    log_warn("listening connection: %s%s", why,
             listener.phase == READY || listener.phase == SETUP
                 ? ", replacing it"
                 : "");
    unwatch();
    pg_close(listener.pg);
    listener.phase = DOWN;
    listener.call = NONE;
    listener.backoff_ms = backoff_next(
        listener.backoff_ms, NOTIFY_BACKOFF_MIN_MS, NOTIFY_BACKOFF_MAX_MS);
    listener.retry_at = mono_ms() + listener.backoff_ms;
    if (listener.retry_at < pg_retry_at(listener.pg))
        listener.retry_at = pg_retry_at(listener.pg);
    if (was_up)
        listener.cb.down();
    while ((q = dequeue())) {
        q->fn(q->arg, NULL, 0);
        query_free(q);
    }
}

static void
connect_start(void)
{
    enum pg_wait wait;

    if (pg_start(listener.pg, &wait) < 0) {
        fail(pg_error(listener.pg));
        return;
    }
    stats_add(&stats_all->db_reconnects, 1);
    listener.phase = CONNECTING;
    listener.sent_at = mono_ms();
    rewatch(wait);
}

/* Reads the private rooms: first thing on a new connection, and whenever
 * a notification says they changed. */
static void
send_private(void)
{
    listener.want_private = 0;
    if (store_private_send(listener.pg) < 0) {
        fail(pg_error(listener.pg));
        return;
    }
    listener.call = CALL_PRIVATE;
    listener.sent_at = mono_ms();
    on_event(&listener.w, EV_OUT);
}

/* Starts the next call, if the connection is free for one. */
static void
send_next(void)
{
    struct query *q = listener.head;

    if (listener.call != NONE ||
        (listener.phase != READY && listener.phase != SETUP))
        return;
    if (listener.want_private) {
        send_private();
        return;
    }
    if (listener.phase != READY || !q)
        return;
    if (store_recv_send(listener.pg, q->room, q->since, q->limit) < 0) {
        fail(pg_error(listener.pg));
        return;
    }
    listener.call = CALL_RECV;
    listener.sent_at = mono_ms();
    stats_add(&stats_all->room_queries, 1);
    on_event(&listener.w, EV_OUT); /* writes what it can at once */
}

/* The call in flight has its whole answer. */
static void
complete(void)
{
    struct pg_res *res = pg_take(listener.pg);
    enum call call = listener.call;

    listener.call = NONE;
    listener.idle_since = mono_ms();
    if (call == CALL_SETUP) {
        if (!res) {
            pg_res_free(res);
            fail("cannot LISTEN");
            return;
        }
        pg_res_free(res);
        /* The set is read after LISTEN is in place, so that no change
         * can fall between the two; the connection is ready after. */
        listener.want_private = 1;
    } else if (call == CALL_PRIVATE) {
        size_t n = 0;
        char **names = store_private_decode(res, &n);

        if (!names) {
            fail("cannot read the private rooms");
            return;
        }
        listener.cb.private_rooms(names, n);
        store_strv_free(names);
        if (listener.phase == SETUP) {
            listener.phase = READY;
            listener.backoff_ms = 0;
            log_info("listening for new messages");
            listener.cb.up();
        }
    } else if (call == CALL_RECV) {
        struct query *q = dequeue();
        int64_t head = 0;
        struct msg_list *list = store_recv_decode(res, &head);

        q->fn(q->arg, list, head);
        query_free(q);
    } else {
        pg_res_free(res); /* the check of an idle connection */
    }
}

static void
on_event(struct ev_watch *w, uint32_t events)
{
    enum pg_wait wait = PG_WAIT_READ;
    int rc;

    (void)w;
    (void)events;
    if (listener.phase == READY && listener.call == NONE) {
        if (pg_read_idle(listener.pg) < 0) {
            fail(pg_error(listener.pg));
            return;
        }
        collect_notifies();
        return;
    }
    rc = pg_step(listener.pg, &wait);
    if (rc < 0) {
        fail(pg_error(listener.pg));
        return;
    }
    collect_notifies();
    if (rc == 0) {
        rewatch(wait);
        return;
    }
    if (listener.phase == CONNECTING) {
        listener.phase = SETUP;
        unwatch(); /* the last step may have swapped the socket too */
        if (store_listen_send(listener.pg) < 0) {
            fail(pg_error(listener.pg));
            return;
        }
        listener.call = CALL_SETUP;
        listener.sent_at = mono_ms();
        on_event(w, EV_OUT);
        return;
    }
    complete();
    if (listener.phase != READY && listener.phase != SETUP)
        return;
    rewatch(PG_WAIT_READ);
    send_next();
}

int
notify_init(const char *conninfo, const struct notify_callbacks *cb)
{
    listener.cb = *cb;
    listener.pg = pg_new(conninfo, "pgchat-listen", config.db_timeout_ms);
    listener.w.fd = -1;
    connect_start();
    return 0;
}

int
notify_recv(const char *room, int64_t since, int limit, notify_fn fn, void *arg)
{
    struct query *q;

    if (listener.phase != READY)
        return -1;
    q = xcalloc(1, sizeof(*q));
    q->room = xstrdup(room);
    q->since = since;
    q->limit = limit;
    q->fn = fn;
    q->arg = arg;
    if (listener.tail)
        listener.tail->next = q;
    else
        listener.head = q;
    listener.tail = q;
    listener.kick = 1; /* sent from notify_tick(), after the caller is done */
    return 0;
}

void
notify_drain(void)
{
    if (listener.phase == READY && listener.call == NONE)
        on_event(&listener.w, EV_IN);
}

int
notify_up(void)
{
    return listener.phase == READY;
}

int
notify_healthy(void)
{
    return listener.phase == READY &&
           (listener.call == NONE ||
            mono_ms() - listener.sent_at <= config.db_timeout_ms);
}

int64_t
notify_due(void)
{
    if (listener.kick)
        return 0;
    switch (listener.phase) {
    case DOWN:
        return listener.retry_at;
    case CONNECTING:
    case SETUP:
        return listener.sent_at + config.db_timeout_ms;
    case READY:
        break;
    }
    return listener.call != NONE ? listener.sent_at + config.db_timeout_ms
                                 : listener.idle_since + config.db_timeout_ms;
}

void
notify_tick(int64_t now)
{
    if (listener.phase == DOWN) {
        if (now >= listener.retry_at)
            connect_start();
        return;
    }
    if ((listener.phase != READY || listener.call != NONE) &&
        now - listener.sent_at > config.db_timeout_ms) {
        stats_add(&stats_all->db_timeouts, 1);
        unwatch();
        pg_abandon(listener.pg);
        fail(listener.phase == CONNECTING ? "no connection within the timeout"
                                          : "no answer within the timeout");
        return;
    }
    if (listener.phase != READY)
        return;
    if (listener.kick) {
        listener.kick = 0;
        send_next();
    }
    if (listener.phase == READY && listener.call == NONE &&
        now - listener.idle_since >= config.db_timeout_ms) {
        if (store_check_send(listener.pg) < 0) {
            fail(pg_error(listener.pg));
            return;
        }
        listener.call = CALL_CHECK;
        listener.sent_at = now;
        on_event(&listener.w, EV_OUT);
    }
}

void
notify_close(void)
{
    struct query *q;

    unwatch();
    pg_free(listener.pg);
    listener.pg = NULL;
    listener.phase = DOWN;
    while ((q = dequeue())) {
        q->fn(q->arg, NULL, 0); /* the caller frees what it passed */
        query_free(q);
    }
}
