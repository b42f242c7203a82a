/* writer.c -- the worker's writer thread: joins, parts, who, and sends
 * stored by group commit.
 *
 * The server thread queues requests here and goes back to reading. The thread
 * takes everything queued at once: all the sends become one transaction with
 * one wake-up per room (migrations: chat_send), so while one commit is being
 * flushed the next batch gathers by itself. Each send is answered only once
 * its transaction has committed.
 */
#include "writer.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "limit.h"
#include "loop.h"
#include "routes.h"
#include "server.h"
#include "store.h"
#include "util.h"
#include "views.h"

/* Sends in one transaction at the most: bounds the statement's size. */
#define WRITER_MAX_BATCH 1024

static struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct req *head, *tail;
    int stopping;
    struct store *st;
    struct limiter *limiter; /* sends per session; NULL: no limit */
    int64_t next_prune;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

void
writer_submit(struct req *r, enum writer_job job)
{
    r->job = job;
    r->next = NULL;
    pthread_mutex_lock(&W.mu);
    if (W.stopping) {
        pthread_mutex_unlock(&W.mu);
        routes_error(r, 503, "Server is restarting, try again");
        return;
    }
    /* The writer waits only on an empty queue, and takes all of it at once:
     * only the first request of a batch needs to wake it. */
    if (!W.head)
        pthread_cond_signal(&W.cond);
    if (W.tail)
        W.tail->next = r;
    else
        W.head = r;
    W.tail = r;
    pthread_mutex_unlock(&W.mu);
}

static void
do_join(struct req *r)
{
    size_t len;
    char *body;

    switch (store_join(W.st, r->token, r->room, r->nick,
                       config.session_timeout_s, config.room_sessions)) {
    case STORE_JOINED:
        body = views_join(r->token, r->nick, rss_current(), config.starttime,
                          &len);
        req_reply(r, 200, body, len);
        free(body);
        break;
    case STORE_TAKEN:
        routes_error(r, 400, "Nick in use");
        break;
    case STORE_FULL:
        routes_error(r, 403, "Room is full");
        break;
    case STORE_ERROR:
        routes_error(r, 503, ROUTES_DB_DOWN);
        break;
    }
}

static void
do_part(struct req *r)
{
    if (store_part(W.st, r->id, r->room) < 0)
        routes_error(r, 503, ROUTES_DB_DOWN);
    else
        routes_ok(r);
}

static void
do_who(struct req *r)
{
    size_t n, len;
    char **nicks = store_who(W.st, r->room, &n);
    char *body;

    if (!nicks) {
        routes_error(r, 503, ROUTES_DB_DOWN);
        return;
    }
    body = views_who(nicks, n, rss_current(), &len);
    req_reply(r, 200, body, len);
    free(body);
    store_strv_free(nicks);
}

static void
do_health(struct req *r)
{
    size_t len;
    char *body;

    if (store_ping(W.st) < 0) {
        routes_error(r, 503, ROUTES_DB_DOWN);
        return;
    }
    body = views_health(rss_current(), &len);
    req_reply(r, 200, body, len);
    free(body);
}

static void
do_stats(struct req *r)
{
    struct store_stats db;
    struct views_stats v;
    size_t len;
    char *body;

    if (store_stats(W.st, &db) < 0) {
        routes_error(r, 503, ROUTES_DB_DOWN);
        return;
    }
    v.uptime_s = (now_ms() - config.starttime) / 1000;
    v.pid = getpid();
    v.parked = (long long)loop_parked();
    v.messages = db.messages;
    v.sessions = db.sessions;
    v.rooms = db.rooms;
    v.rss = rss_current();
    server_counts(&v.connections, &v.requests);
    body = views_stats(&v, &len);
    req_reply(r, 200, body, len);
    free(body);
}

/* Takes the n requests in sends: stores them in one transaction. */
static void
do_sends(struct req **sends, size_t n)
{
    const char **tokens = xcalloc(n, sizeof(*tokens));
    const char **rooms = xcalloc(n, sizeof(*rooms));
    const char **texts = xcalloc(n, sizeof(*texts));
    unsigned char *accepted = xcalloc(n, 1);
    int rc;

    for (size_t i = 0; i < n; i++) {
        tokens[i] = sends[i]->id;
        rooms[i] = sends[i]->room;
        texts[i] = sends[i]->text;
    }
    rc = store_send(W.st, tokens, rooms, texts, n, accepted);
    for (size_t i = 0; i < n; i++) {
        if (rc < 0) {
            routes_error(sends[i], 503, ROUTES_DB_DOWN);
        } else if (accepted[i]) {
            loop_touch(sends[i]->id);
            routes_ok(sends[i]);
        } else {
            routes_error(sends[i], 400, "No such session id");
        }
    }
    free(tokens);
    free(rooms);
    free(texts);
    free(accepted);
}

/* Whether the session of r may send now. The buckets live in this worker
 * only, so a session spread over W workers may reach W times the rate; nginx
 * limits each client address exactly, in front of all of them. */
static int
allowed(const struct req *r)
{
    int64_t now = mono_ms();

    if (!W.limiter)
        return 1;
    if (now >= W.next_prune) {
        limiter_prune(W.limiter, now);
        W.next_prune = now + 10000;
    }
    return limiter_take(W.limiter, r->id, now);
}

/* Takes the list: answers every request in it. */
static void
run_batch(struct req *list)
{
    struct req **sends = xcalloc(WRITER_MAX_BATCH, sizeof(*sends));
    size_t nsends = 0;

    while (list) {
        struct req *r = list;

        list = r->next;
        switch (r->job) {
        case WRITER_JOIN:
            do_join(r);
            break;
        case WRITER_PART:
            do_part(r);
            break;
        case WRITER_WHO:
            do_who(r);
            break;
        case WRITER_HEALTH:
            do_health(r);
            break;
        case WRITER_STATS:
            do_stats(r);
            break;
        case WRITER_SEND:
            if (!allowed(r)) {
                routes_error(r, 429, "Too many messages, slow down");
                break;
            }
            sends[nsends++] = r;
            if (nsends == WRITER_MAX_BATCH) {
                do_sends(sends, nsends);
                nsends = 0;
            }
            break;
        }
    }
    if (nsends)
        do_sends(sends, nsends);
    free(sends);
}

static void *
writer_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct req *list;

        pthread_mutex_lock(&W.mu);
        while (!W.head && !W.stopping)
            pthread_cond_wait(&W.cond, &W.mu);
        /* What was queued before stopping is still stored and answered. */
        list = W.head;
        W.head = W.tail = NULL;
        pthread_mutex_unlock(&W.mu);
        if (!list)
            break; /* stopping, and nothing left */
        run_batch(list);
    }
    return NULL;
}

int
writer_start(void)
{
    W.st = store_new(config.database_url, 0);
    if (config.rate_limit)
        W.limiter = limiter_new(config.send_rate, config.send_burst);
    if (pthread_create(&W.thread, NULL, writer_main, NULL) != 0) {
        log_error("cannot start the writer thread");
        return -1;
    }
    return 0;
}

void
writer_stop(void)
{
    pthread_mutex_lock(&W.mu);
    W.stopping = 1;
    pthread_cond_signal(&W.cond);
    pthread_mutex_unlock(&W.mu);
    pthread_join(W.thread, NULL);
    store_free(W.st);
    W.st = NULL;
    limiter_free(W.limiter);
    W.limiter = NULL;
}
