/* writer.c -- the worker's writer thread: joins, parts, who, /stats, and
 * sends stored by group commit.
 *
 * The loop thread queues jobs here and goes back to its sockets. This
 * thread takes everything queued at once: all the sends become one
 * transaction with one wake-up per room (migrations: chat_send), so while
 * one commit is being flushed the next batch gathers by itself. Each send
 * is answered only once its transaction has committed. Every database call
 * is bounded (PGCHAT_DB_TIMEOUT, pg.h): one that does not answer is given
 * up with 503, and the next batch runs on a new connection.
 */
#include "writer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "limit.h"
#include "maint.h"
#include "pg.h"
#include "stats.h"
#include "store.h"
#include "util.h"
#include "views.h"

/* Sends in one transaction at the most: bounds the statement's size. */
#define WRITER_MAX_BATCH 1024

static struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC */
    struct job *head, *tail;
    int stopping;
    _Atomic int done; /* the thread has finished */
    struct pg *pg;
    struct limiter *limiter; /* sends per session; NULL: no limit */
    int64_t next_prune;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER};

void
writer_submit(struct job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&W.mu);
    if (W.stopping) {
        pthread_mutex_unlock(&W.mu);
        job_error(j, 503, "Server is restarting, try again");
        return;
    }
    /* The writer waits only on an empty queue, and takes all of it at once:
     * only the first job of a batch needs to wake it. */
    if (!W.head)
        pthread_cond_signal(&W.cond);
    if (W.tail)
        W.tail->next = j;
    else
        W.head = j;
    W.tail = j;
    pthread_mutex_unlock(&W.mu);
}

void
writer_touch(char **ids, size_t n)
{
    maint_touch(ids, n);
}

/* The session's cookie for the room's event stream (EventSource cannot
 * send a header): readable by no script, sent to no other site. token
 * NULL clears it. Written into j->cookie. */
static void
session_cookie(struct job *j, const char *token)
{
    const char *base = req_env(j->req, "PGCHAT_BASE");
    const char *https = req_env(j->req, "HTTPS");

    snprintf(j->cookie, sizeof(j->cookie),
             "Set-Cookie: pgchat_%s=%s; Path=%s; HttpOnly; SameSite=Strict%s%s"
             "\r\n",
             j->room, token ? token : "", base && *base ? base : "/",
             https && strcmp(https, "on") == 0 ? "; Secure" : "",
             token ? "" : "; Max-Age=0");
}

static void
do_join(struct job *j)
{
    struct store_join_args a = {
        .token = j->token,
        .room = j->room,
        .nick = j->nick,
        .addr = j->addr,
        .idle_seconds = config.session_timeout_s,
        .room_cap = config.room_sessions,
        .addr_cap = config.addr_sessions,
    };
    size_t len;
    char *body;

    switch (store_join(W.pg, &a)) {
    case STORE_JOINED:
        body = views_join(j->token, j->nick, rss_current(), config.starttime,
                          &len);
        session_cookie(j, j->token);
        job_reply(j, body, len);
        free(body);
        break;
    case STORE_TAKEN:
        job_error(j, 400, "Nick in use");
        break;
    case STORE_FULL:
        job_error(j, 403, "Room is full");
        break;
    case STORE_ADDR_FULL:
        job_error(j, 403, "Too many sessions from your address");
        break;
    case STORE_ERROR:
        job_error(j, 503, REQ_DB_DOWN);
        break;
    }
}

static void
do_part(struct job *j)
{
    size_t len;
    char *body;

    if (store_part(W.pg, j->id, j->room) < 0) {
        job_error(j, 503, REQ_DB_DOWN);
        return;
    }
    body = views_rss(rss_current(), &len);
    session_cookie(j, NULL);
    job_reply(j, body, len);
    free(body);
}

static void
do_who(struct job *j)
{
    size_t n, len;
    char **nicks = store_who(W.pg, j->room, &n);
    char *body;

    if (!nicks) {
        job_error(j, 503, REQ_DB_DOWN);
        return;
    }
    body = views_who(nicks, n, rss_current(), &len);
    job_reply(j, body, len);
    free(body);
    store_strv_free(nicks);
}

static void
do_stats(struct job *j)
{
    struct store_stats db;
    struct views_stats v;
    size_t len;
    char *body;

    if (store_stats(W.pg, &db) < 0) {
        job_error(j, 503, REQ_DB_DOWN);
        return;
    }
    v.uptime_s = (now_ms() - config.starttime) / 1000;
    v.pid = getpid();
    v.parked = stats.parked;
    v.messages = db.messages;
    v.sessions = db.sessions;
    v.rooms = db.rooms;
    v.rss = rss_current();
    v.connections = stats.connections;
    v.requests = stats.requests;
    body = views_stats(&v, &len);
    job_reply(j, body, len);
    free(body);
}

/* Takes the n jobs in sends: stores them in one transaction. */
static void
do_sends(struct job **sends, size_t n)
{
    const char **tokens = xcalloc(n, sizeof(*tokens));
    const char **rooms = xcalloc(n, sizeof(*rooms));
    const char **texts = xcalloc(n, sizeof(*texts));
    const char **mids = xcalloc(n, sizeof(*mids));
    int64_t *ts = xcalloc(n, sizeof(*ts));
    char **touched = xcalloc(n, sizeof(*touched));
    size_t ntouched = 0;
    int rc;

    for (size_t i = 0; i < n; i++) {
        tokens[i] = sends[i]->id;
        rooms[i] = sends[i]->room;
        texts[i] = sends[i]->text;
        mids[i] = sends[i]->mid;
    }
    rc = store_send(W.pg, tokens, rooms, texts, mids, n, ts);
    if (rc >= 0)
        stats_batch((long long)n);
    for (size_t i = 0; i < n; i++) {
        if (rc < 0) {
            job_error(sends[i], 503, REQ_DB_DOWN);
        } else if (ts[i]) {
            size_t len;
            char *body = views_sent(rss_current(), ts[i], &len);

            touched[ntouched++] = xstrdup(sends[i]->id);
            stats_add(&stats_all->messages_stored, 1);
            job_reply(sends[i], body, len);
            free(body);
        } else {
            job_error(sends[i], 400, "No such session id");
        }
    }
    maint_touch(touched, ntouched);
    free(tokens);
    free(rooms);
    free(texts);
    free(mids);
    free(ts);
}

/* Whether the session of j may send now. With PGCHAT_WRITE_SOCKET one
 * worker takes every send, so the rate is exact per responder; otherwise a
 * session spread over W workers may reach W times it. nginx limits each
 * client address exactly, in front of all of them. */
static int
allowed(const struct job *j)
{
    int64_t now = mono_ms();

    if (!W.limiter)
        return 1;
    if (now >= W.next_prune) {
        limiter_prune(W.limiter, now);
        W.next_prune = now + 10000;
    }
    return limiter_take(W.limiter, j->id, now);
}

/* Takes the list: answers every job in it. */
static void
run_batch(struct job *list)
{
    struct job **sends = xcalloc(WRITER_MAX_BATCH, sizeof(*sends));
    size_t nsends = 0;

    while (list) {
        struct job *j = list;

        list = j->next;
        switch (j->kind) {
        case JOB_JOIN:
            do_join(j);
            break;
        case JOB_PART:
            do_part(j);
            break;
        case JOB_WHO:
            do_who(j);
            break;
        case JOB_STATS:
            do_stats(j);
            break;
        case JOB_HISTORY:
        case JOB_SEARCH: /* archive.c's: routes.c sends them there */
            job_error(j, 500, "Internal server error");
            break;
        case JOB_SEND:
            if (!allowed(j)) {
                job_error(j, 429, "Too many messages, slow down");
                break;
            }
            sends[nsends++] = j;
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

/* Waits for jobs, or until maintenance is due. Returns the queue. */
static struct job *
take_jobs(void)
{
    struct job *list;

    pthread_mutex_lock(&W.mu);
    while (!W.head && !W.stopping) {
        int64_t due = maint_due(), now = mono_ms();
        struct timespec ts;

        if (due <= now)
            break;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (due - now) / 1000;
        ts.tv_nsec += ((due - now) % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&W.cond, &W.mu, &ts);
    }
    list = W.head;
    W.head = W.tail = NULL;
    pthread_mutex_unlock(&W.mu);
    return list;
}

static void *
writer_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct job *list = take_jobs();
        int stopping;

        if (list)
            run_batch(list);
        pthread_mutex_lock(&W.mu);
        stopping = W.stopping && !W.head;
        pthread_mutex_unlock(&W.mu);
        /* What was queued before stopping is still stored and answered;
         * then the last keep-alives. */
        maint_run(W.pg, mono_ms(), stopping);
        if (stopping)
            break;
    }
    W.done = 1;
    return NULL;
}

int
writer_start(void)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&W.cond, &attr);
    pthread_condattr_destroy(&attr);
    W.pg = pg_new(config.database_url, "pgchat-writer", config.db_timeout_ms);
    if (config.rate_limit)
        W.limiter = limiter_new(config.send_rate, config.send_burst);
    maint_init();
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
}

int
writer_done(void)
{
    return W.done;
}

void
writer_join(void)
{
    pthread_join(W.thread, NULL);
    pg_free(W.pg);
    W.pg = NULL;
    limiter_free(W.limiter);
    W.limiter = NULL;
}
