/* listen.c -- the worker's LISTEN connection: its life and the queries the
 * event loop runs on it, one at a time, never waiting.
 *
 * The connection is driven by epoll on its socket (pg.h): connecting, the
 * setup (PREPARE and LISTEN), queries and their answers all happen in
 * steps, so pings, hang-ups, timers and signals are served while a call is
 * in flight. Every call, the connection included, has PGCHAT_DB_TIMEOUT to
 * answer; one that has not is given up, the connection closed and replaced
 * with back-off. An idle connection is checked with a trivial query once per
 * timeout, so a silently dead one is replaced within about twice the bound.
 * Notifications that libpq reads along the way are collected after every
 * step.
 */
#include "listen.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ev.h"
#include "pg.h"
#include "stats.h"
#include "store.h"
#include "util.h"

#define LISTEN_BACKOFF_MIN_MS 250
#define LISTEN_BACKOFF_MAX_MS 5000

enum phase { DOWN, CONNECTING, SETUP, READY };
enum call { NONE, CALL_SETUP, CALL_RECV, CALL_PING };

struct query {
    char *room; /* owned */
    int64_t since;
    int limit;
    listen_fn fn;
    void *arg;
    struct query *next;
};

static struct {
    struct pg *pg;
    struct listen_callbacks cb;
    struct ev_watch w;
    int watched;     /* w is in epoll */
    uint32_t events; /* what it is watched for */
    enum phase phase;
    enum call call;  /* in flight */
    int64_t sent_at; /* mono_ms() the call in flight (or connect) began */
    int64_t idle_since;
    int64_t retry_at; /* DOWN: when to connect again */
    int backoff_ms;
    int kick; /* queries wait to be sent */
    struct query *head, *tail;
} P;

static void on_event(struct ev_watch *w, uint32_t events);

static void
unwatch(void)
{
    if (P.watched)
        ev_del(&P.w);
    P.watched = 0;
}

/* Watches the connection's socket for what libpq waits for. */
static void
rewatch(enum pg_wait wait)
{
    uint32_t events = EV_IN;

    if (wait & PG_WAIT_WRITE)
        events |= EV_OUT;
    if (P.watched && events == P.events)
        return;
    P.w.fd = pg_fd(P.pg);
    P.w.fn = on_event;
    if ((P.watched ? ev_mod(&P.w, events) : ev_add(&P.w, events)) == 0) {
        P.watched = 1;
        P.events = events;
    } else {
        log_error("cannot watch the listening connection");
    }
}

static void
collect_notifies(void)
{
    char *payload;

    while ((payload = pg_notify(P.pg))) {
        const char *room;
        int64_t head;

        if (store_notify_parse(payload, &room, &head) == 0)
            P.cb.notify(room, head);
        free(payload);
    }
}

static struct query *
dequeue(void)
{
    struct query *q = P.head;

    if (q) {
        P.head = q->next;
        if (!P.head)
            P.tail = NULL;
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
    int was_up = P.phase == READY;
    struct query *q;

    log_warn("listening connection: %s%s", why,
             P.phase == READY || P.phase == SETUP ? ", replacing it" : "");
    unwatch();
    pg_close(P.pg);
    P.phase = DOWN;
    P.call = NONE;
    P.backoff_ms = P.backoff_ms ? 2 * P.backoff_ms : LISTEN_BACKOFF_MIN_MS;
    if (P.backoff_ms > LISTEN_BACKOFF_MAX_MS)
        P.backoff_ms = LISTEN_BACKOFF_MAX_MS;
    P.retry_at = mono_ms() + P.backoff_ms;
    if (P.retry_at < pg_retry_at(P.pg))
        P.retry_at = pg_retry_at(P.pg);
    if (was_up)
        P.cb.down();
    while ((q = dequeue())) {
        q->fn(q->arg, NULL, 0);
        query_free(q);
    }
}

static void
connect_start(void)
{
    enum pg_wait wait;

    if (pg_start(P.pg, &wait) < 0) {
        fail(pg_error(P.pg));
        return;
    }
    stats_add(&stats.db_reconnects, 1);
    stats_add(&stats_all->db_reconnects, 1);
    P.phase = CONNECTING;
    P.sent_at = mono_ms();
    rewatch(wait);
}

/* Starts the next call, if the connection is free for one. */
static void
send_next(void)
{
    struct query *q = P.head;

    if (P.phase != READY || P.call != NONE || !q)
        return;
    if (store_recv_send(P.pg, q->room, q->since, q->limit) < 0) {
        fail(pg_error(P.pg));
        return;
    }
    P.call = CALL_RECV;
    P.sent_at = mono_ms();
    on_event(&P.w, EV_OUT); /* writes what it can at once */
}

/* The call in flight has its whole answer. */
static void
complete(void)
{
    struct pg_res *res = pg_take(P.pg);
    enum call call = P.call;

    P.call = NONE;
    P.idle_since = mono_ms();
    if (call == CALL_SETUP) {
        if (!res) {
            pg_res_free(res);
            fail("cannot LISTEN");
            return;
        }
        pg_res_free(res);
        P.phase = READY;
        P.backoff_ms = 0;
        log_info("listening for new messages");
        P.cb.up();
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
    if (P.phase == READY && P.call == NONE) {
        if (pg_read_idle(P.pg) < 0) {
            fail(pg_error(P.pg));
            return;
        }
        collect_notifies();
        return;
    }
    rc = pg_step(P.pg, &wait);
    if (rc < 0) {
        fail(pg_error(P.pg));
        return;
    }
    collect_notifies();
    if (rc == 0) {
        rewatch(wait);
        return;
    }
    if (P.phase == CONNECTING) {
        P.phase = SETUP;
        if (store_listen_send(P.pg) < 0) {
            fail(pg_error(P.pg));
            return;
        }
        P.call = CALL_SETUP;
        P.sent_at = mono_ms();
        on_event(w, EV_OUT);
        return;
    }
    complete();
    if (P.phase != READY)
        return;
    rewatch(PG_WAIT_READ);
    send_next();
}

int
listen_init(const char *conninfo, const struct listen_callbacks *cb)
{
    P.cb = *cb;
    P.pg = pg_new(conninfo, "pgchat-listen", config.db_timeout_ms);
    P.w.fd = -1;
    connect_start();
    return 0;
}

int
listen_recv(const char *room, int64_t since, int limit, listen_fn fn, void *arg)
{
    struct query *q;

    if (P.phase != READY)
        return -1;
    q = xcalloc(1, sizeof(*q));
    q->room = xstrdup(room);
    q->since = since;
    q->limit = limit;
    q->fn = fn;
    q->arg = arg;
    if (P.tail)
        P.tail->next = q;
    else
        P.head = q;
    P.tail = q;
    P.kick = 1; /* sent from listen_tick(), after the caller is done */
    return 0;
}

void
listen_drain(void)
{
    if (P.phase == READY && P.call == NONE)
        on_event(&P.w, EV_IN);
}

int
listen_up(void)
{
    return P.phase == READY;
}

int
listen_healthy(void)
{
    return P.phase == READY &&
           (P.call == NONE || mono_ms() - P.sent_at <= config.db_timeout_ms);
}

int64_t
listen_due(void)
{
    if (P.kick)
        return 0;
    switch (P.phase) {
    case DOWN:
        return P.retry_at;
    case CONNECTING:
    case SETUP:
        return P.sent_at + config.db_timeout_ms;
    case READY:
        break;
    }
    return P.call != NONE ? P.sent_at + config.db_timeout_ms
                          : P.idle_since + config.db_timeout_ms;
}

void
listen_tick(int64_t now)
{
    if (P.phase == DOWN) {
        if (now >= P.retry_at)
            connect_start();
        return;
    }
    if ((P.phase != READY || P.call != NONE) &&
        now - P.sent_at > config.db_timeout_ms) {
        stats_add(&stats.db_timeouts, 1);
        stats_add(&stats_all->db_timeouts, 1);
        unwatch();
        pg_abandon(P.pg);
        fail(P.phase == CONNECTING ? "no connection within the timeout"
                                   : "no answer within the timeout");
        return;
    }
    if (P.phase != READY)
        return;
    if (P.kick) {
        P.kick = 0;
        send_next();
    }
    if (P.phase == READY && P.call == NONE &&
        now - P.idle_since >= config.db_timeout_ms) {
        if (store_ping_send(P.pg) < 0) {
            fail(pg_error(P.pg));
            return;
        }
        P.call = CALL_PING;
        P.sent_at = now;
        on_event(&P.w, EV_OUT);
    }
}

void
listen_close(void)
{
    struct query *q;

    unwatch();
    pg_free(P.pg);
    P.pg = NULL;
    P.phase = DOWN;
    while ((q = dequeue())) {
        q->fn(q->arg, NULL, 0); /* the caller frees what it passed */
        query_free(q);
    }
}
