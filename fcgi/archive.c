/* archive.c -- the worker's archive: /history and /search, the reads of
 * what is stored, each on a thread and a connection of its own.
 *
 * A search that has to filter can be costly, and anyone may ask for one:
 * on the writer's connection every send, and so every wake-up, would wait
 * behind it, and on the history's every page would. So a page waits only
 * for other pages, a search for other searches. Each connection is opened
 * by its first read and closed after ARCHIVE_IDLE_MS without one, so a
 * worker whose users do not scroll back holds only its writer's and its
 * LISTEN connections. Both connect to ARCHIVE_DATABASE_URL where it is set
 * (a standby: see the README's High availability).
 *
 * Every read is bounded twice: the responder gives a call up after
 * PGCHAT_DB_TIMEOUT (pg.h), and PostgreSQL gives the statement up at the
 * same bound (store_read_begin()), so a read given up here stops there
 * too. One client address may have at most PGCHAT_ADDR_READS reads queued
 * or running in a worker, and a queue holds at most ARCHIVE_MAX_QUEUED:
 * past either the read is refused at once, with Retry-After, so that no
 * address can build a backlog that others wait behind.
 */
#include "archive.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "jobq.h"
#include "pg.h"
#include "store.h"
#include "util.h"
#include "views.h"

#define ARCHIVE_IDLE_MS 30000
#define ARCHIVE_MAX_QUEUED 64
#define ARCHIVE_ADDR_BUCKETS 256

/* One thread's reads: its queue and its connection. */
struct shelf {
    const char *name; /* the thread's, and the connection's application */
    struct jobq *q;
    struct pg *pg;
};

/* An address with reads queued or running; gone when it has none. */
struct client {
    char addr[48];
    int reads;
    struct client *next;
};

static struct {
    struct shelf history, search;
    pthread_mutex_t mu; /* guards clients */
    struct client *clients[ARCHIVE_ADDR_BUCKETS];
} archive = {
    .history = {.name = "pgchat-archive"},
    .search = {.name = "pgchat-search"},
    .mu = PTHREAD_MUTEX_INITIALIZER,
};

static struct client **
client_slot(const char *addr)
{
    unsigned h = 5381;
    struct client **pp;

    for (const char *p = addr; *p; p++)
        h = h * 33 + (unsigned char)*p;
    pp = &archive.clients[h % ARCHIVE_ADDR_BUCKETS];
    while (*pp && strcmp((*pp)->addr, addr) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Counts a read for addr. Returns 0, or -1 when it has its share. */
static int
client_take(const char *addr)
{
    struct client **pp;
    int rc = 0;

    pthread_mutex_lock(&archive.mu);
    pp = client_slot(addr);
    if (!*pp) {
        *pp = xcalloc(1, sizeof(**pp));
        snprintf((*pp)->addr, sizeof((*pp)->addr), "%s", addr);
    }
    if (config.addr_reads && (*pp)->reads >= config.addr_reads)
        rc = -1;
    else
        (*pp)->reads++;
    pthread_mutex_unlock(&archive.mu);
    return rc;
}

static void
client_give(const char *addr)
{
    struct client **pp, *c;

    pthread_mutex_lock(&archive.mu);
    pp = client_slot(addr);
    c = *pp;
    if (c && --c->reads <= 0) {
        *pp = c->next;
        free(c);
    }
    pthread_mutex_unlock(&archive.mu);
}

void
archive_submit(struct job *j)
{
    struct shelf *sh = (enum archive_job)j->kind == ARCHIVE_SEARCH
                           ? &archive.search
                           : &archive.history;

    snprintf(j->client, sizeof(j->client), "%s", j->addr ? j->addr : "");
    if (client_take(j->client) < 0) {
        job_error_retry(j, 429, "Too many reads at once, slow down", 1);
        return;
    }
    if (jobq_submit(sh->q, j) == 0)
        return;
    client_give(j->client);
    if (jobq_full(sh->q))
        job_error_retry(j, 503, "Too many reads waiting, try again", 1);
    else
        job_error_retry(j, 503, "Server is restarting, try again", 1);
}

/* One page is one backward scan of the (room, ts) index. */
static void
do_history(struct shelf *sh, struct job *j)
{
    int more;
    struct msg_list *list =
        store_history(sh->pg, j->room, j->before, j->limit, &more);
    size_t len;
    char *body;

    store_read_end(sh->pg, list != NULL);
    if (!list) {
        job_error_retry(j, 503, REQ_DB_DOWN, 1);
        return;
    }
    body = views_history(list, more, rss_current(), &len);
    job_reply(j, body, len);
    free(body);
    msg_list_free(list);
}

/* The newest matches among the room's newest messages, then the GIN index
 * on the messages' text (migrations: chat_search). */
static void
do_search(struct shelf *sh, struct job *j)
{
    struct msg_list *list = store_search(sh->pg, j->room, j->query, j->limit);
    size_t len;
    char *body;

    store_read_end(sh->pg, list != NULL);
    if (!list) {
        job_error_retry(j, 503, "Search failed or took too long, try again", 1);
        return;
    }
    body = views_messages(list, rss_current(), 0, &len);
    job_reply(j, body, len);
    free(body);
    msg_list_free(list);
}

static void
answer(struct shelf *sh, struct job *j)
{
    if (j->req->gone) {
        /* Nobody would read the answer: the query is not run. */
        job_error(j, 503, "Client has gone");
        return;
    }
    if (store_read_begin(sh->pg, config.db_timeout_ms) < 0) {
        job_error_retry(j, 503, REQ_DB_DOWN, 1);
        return;
    }
    switch ((enum archive_job)j->kind) {
    case ARCHIVE_HISTORY:
        do_history(sh, j);
        break;
    case ARCHIVE_SEARCH:
        do_search(sh, j);
        break;
    }
}

static void
run(void *arg, struct job *list)
{
    struct shelf *sh = arg;

    while (list) {
        struct job *j = list;
        char client[sizeof(j->client)];

        list = j->next;
        memcpy(client, j->client, sizeof(client));
        answer(sh, j); /* frees j */
        client_give(client);
    }
}

static int64_t
idle_deadline(void *arg)
{
    (void)arg;
    return mono_ms() + ARCHIVE_IDLE_MS;
}

/* Nobody has read for ARCHIVE_IDLE_MS: the connection goes back. */
static void
idle_close(void *arg, int idle, int stopping)
{
    struct shelf *sh = arg;

    (void)stopping;
    if (idle && pg_is_open(sh->pg))
        pg_close(sh->pg);
}

static int
shelf_start(struct shelf *sh)
{
    static const struct jobq_ops ops = {run, idle_deadline, idle_close};

    sh->pg =
        pg_new(config.archive_database_url, sh->name, config.db_timeout_ms);
    sh->q = jobq_start(sh->name, &ops, sh, ARCHIVE_MAX_QUEUED);
    return sh->q ? 0 : -1;
}

int
archive_start(void)
{
    return shelf_start(&archive.history) < 0 || shelf_start(&archive.search) < 0
               ? -1
               : 0;
}

void
archive_stop(void)
{
    if (archive.history.q)
        jobq_stop(archive.history.q);
    if (archive.search.q)
        jobq_stop(archive.search.q);
}

int
archive_done(void)
{
    return (!archive.history.q || jobq_done(archive.history.q)) &&
           (!archive.search.q || jobq_done(archive.search.q));
}

static void
shelf_free(struct shelf *sh)
{
    jobq_free(sh->q);
    sh->q = NULL;
    pg_free(sh->pg);
    sh->pg = NULL;
}

void
archive_join(void)
{
    shelf_free(&archive.history);
    shelf_free(&archive.search);
}
