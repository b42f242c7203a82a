/* archive.c -- the worker's archive thread: /history and /search, the reads
 * of what is stored, on a connection of their own.
 *
 * A search that has to filter can take a tenth of a second, and anyone may
 * ask for one: on the writer's connection every send, and so every wake-up,
 * would wait behind it. Here they wait only for each other, in the order
 * they came. The connection is opened by the first read and closed after
 * ARCHIVE_IDLE_MS without one, so a worker whose users do not scroll back
 * keeps its two connections (the writer's and the LISTEN one). Every call
 * is bounded by PGCHAT_DB_TIMEOUT (pg.h), as the writer's are.
 */
#include "archive.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "config.h"
#include "pg.h"
#include "stats.h"
#include "store.h"
#include "util.h"
#include "views.h"

#define ARCHIVE_IDLE_MS 30000

static struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC */
    struct job *head, *tail;
    int started, stopping;
    _Atomic int done; /* the thread has finished */
    struct pg *pg;
} A = {.mu = PTHREAD_MUTEX_INITIALIZER};

void
archive_submit(struct job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&A.mu);
    if (A.stopping || !A.started) {
        pthread_mutex_unlock(&A.mu);
        job_error(j, 503, "Server is restarting, try again");
        return;
    }
    if (!A.head)
        pthread_cond_signal(&A.cond);
    if (A.tail)
        A.tail->next = j;
    else
        A.head = j;
    A.tail = j;
    pthread_mutex_unlock(&A.mu);
}

/* One page is one backward scan of the (room, ts) index. */
static void
do_history(struct job *j)
{
    int more;
    struct msg_list *list =
        store_history(A.pg, j->room, j->before, j->limit, &more);
    size_t len;
    char *body;

    if (!list) {
        job_error(j, 503, REQ_DB_DOWN);
        return;
    }
    body = views_history(list, more, rss_current(), &len);
    job_reply(j, body, len);
    free(body);
    msg_list_free(list);
}

/* One scan of the GIN index on the messages' text, then at most limit rows
 * by time (migrations: chat_search). */
static void
do_search(struct job *j)
{
    struct msg_list *list = store_search(A.pg, j->room, j->query, j->limit);
    size_t len;
    char *body;

    if (!list) {
        job_error(j, 503, REQ_DB_DOWN);
        return;
    }
    body = views_messages(list, rss_current(), 0, &len);
    job_reply(j, body, len);
    free(body);
    msg_list_free(list);
}

/* Waits up to ARCHIVE_IDLE_MS for jobs. Returns the queue, or NULL. */
static struct job *
take_jobs(void)
{
    struct job *list;
    struct timespec ts;

    pthread_mutex_lock(&A.mu);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ARCHIVE_IDLE_MS / 1000;
    while (!A.head && !A.stopping)
        if (pthread_cond_timedwait(&A.cond, &A.mu, &ts) != 0)
            break; /* idle */
    list = A.head;
    A.head = A.tail = NULL;
    pthread_mutex_unlock(&A.mu);
    return list;
}

static void *
archive_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct job *list = take_jobs();
        int stopping;

        if (!list && pg_is_open(A.pg))
            pg_close(A.pg); /* nobody reads: give the connection back */
        while (list) {
            struct job *j = list;

            list = j->next;
            if (j->kind == JOB_SEARCH)
                do_search(j);
            else
                do_history(j);
        }
        pthread_mutex_lock(&A.mu);
        stopping = A.stopping && !A.head;
        pthread_mutex_unlock(&A.mu);
        if (stopping)
            break;
    }
    A.done = 1;
    return NULL;
}

int
archive_start(void)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&A.cond, &attr);
    pthread_condattr_destroy(&attr);
    A.pg = pg_new(config.database_url, "pgchat-archive", config.db_timeout_ms);
    if (pthread_create(&A.thread, NULL, archive_main, NULL) != 0) {
        log_error("cannot start the archive thread");
        return -1;
    }
    pthread_mutex_lock(&A.mu);
    A.started = 1;
    pthread_mutex_unlock(&A.mu);
    return 0;
}

void
archive_stop(void)
{
    pthread_mutex_lock(&A.mu);
    A.stopping = 1;
    pthread_cond_signal(&A.cond);
    pthread_mutex_unlock(&A.mu);
}

int
archive_done(void)
{
    return !A.started || A.done;
}

void
archive_join(void)
{
    if (A.started)
        pthread_join(A.thread, NULL);
    A.started = 0;
    pg_free(A.pg);
    A.pg = NULL;
}
