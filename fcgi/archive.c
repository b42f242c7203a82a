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

#include <stdlib.h>

#include "config.h"
#include "jobq.h"
#include "pg.h"
#include "store.h"
#include "util.h"
#include "views.h"

#define ARCHIVE_IDLE_MS 30000
/* Reads queued at the most: past it a read is refused at once, so that a
 * flood of them never builds a backlog that outlives it. */
#define ARCHIVE_MAX_QUEUED 64

static struct {
    struct jobq *q;
    struct pg *pg;
} archive;

void
archive_submit(struct job *j)
{
    if (jobq_submit(archive.q, j) == 0)
        return;
    if (jobq_full(archive.q))
        job_error_retry(j, 503, "Too many reads waiting, try again", 1);
    else
        job_error_retry(j, 503, "Server is restarting, try again", 1);
}

/* One page is one backward scan of the (room, ts) index. */
static void
do_history(struct job *j)
{
    int more;
    struct msg_list *list =
        store_history(archive.pg, j->room, j->before, j->limit, &more);
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
    struct msg_list *list =
        store_search(archive.pg, j->room, j->query, j->limit);
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

static void
run(struct job *list)
{
    while (list) {
        struct job *j = list;

        list = j->next;
        if (j->req->gone) {
            /* Nobody would read the answer: the query is not run. */
            job_error(j, 503, "Client has gone");
            continue;
        }
        switch ((enum archive_job)j->kind) {
        case ARCHIVE_HISTORY:
            do_history(j);
            break;
        case ARCHIVE_SEARCH:
            do_search(j);
            break;
        }
    }
}

static int64_t
idle_deadline(void)
{
    return mono_ms() + ARCHIVE_IDLE_MS;
}

/* Nobody has read for ARCHIVE_IDLE_MS: the connection goes back. */
static void
idle_close(int idle, int stopping)
{
    (void)stopping;
    if (idle && pg_is_open(archive.pg))
        pg_close(archive.pg);
}

int
archive_start(void)
{
    static const struct jobq_ops ops = {run, idle_deadline, idle_close};

    archive.pg =
        pg_new(config.database_url, "pgchat-archive", config.db_timeout_ms);
    archive.q = jobq_start("pgchat-archive", &ops, ARCHIVE_MAX_QUEUED);
    return archive.q ? 0 : -1;
}

void
archive_stop(void)
{
    if (archive.q)
        jobq_stop(archive.q);
}

int
archive_done(void)
{
    return !archive.q || jobq_done(archive.q);
}

void
archive_join(void)
{
    jobq_free(archive.q);
    archive.q = NULL;
    pg_free(archive.pg);
    archive.pg = NULL;
}
