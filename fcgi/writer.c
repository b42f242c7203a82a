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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "jobq.h"
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
    struct jobq *q;
    struct pg *pg;
    struct limiter *limiter; /* sends per session; NULL: no limit */
    int64_t next_prune;
} writer;

void
writer_submit(struct job *j)
{
    if (jobq_submit(writer.q, j) < 0)
        job_error_retry(j, 503, "Server is restarting, try again", 1);
}

void
writer_touch(char **ids, size_t n)
{
    maint_touch(ids, n);
}

static void
do_join(struct job *j)
{
    struct store_join_args a = {
        .token = j->token,
        .room = j->room,
        .nick = j->nick,
        .addr = j->addr,
        .login = j->login,
        .idle_seconds = config.session_timeout_s,
        .room_cap = config.room_sessions,
        .addr_cap = config.addr_sessions,
        .rooms_per_minute = config.addr_rooms,
    };
    size_t len;
    char *body;

    switch (store_join(writer.pg, &a)) {
    case STORE_JOINED:
        /* Behind a login the reply says what the client may offer to
         * delete; the database's moderators cost one more query. */
        if (j->login && !j->moderator)
            j->moderator = store_moderates(writer.pg, j->login, j->room) == 1;
        body = views_join(j->token, j->nick, rss_current(), config.starttime,
                          j->moderator, j->login ? config.delete_window_s : 0,
                          &len);
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
    case STORE_BANNED:
        job_error(j, 403, "Banned from this room");
        break;
    case STORE_WAIT:
        job_error_retry(j, 429, "Too many new rooms, slow down",
                        a.wait_seconds);
        break;
    case STORE_ERROR:
        job_error(j, 503, REQ_DB_DOWN);
        break;
    }
}

/* A delete, by a moderator or the author: 404 when there is no such msg
 * (any more), 403 when it is not the user's to delete. */
static void
do_delete(struct job *j)
{
    int64_t ts = store_delete_as(writer.pg, j->room, j->before, j->nick,
                                 j->moderator, config.delete_window_s);
    size_t len;
    char *body;

    if (ts == -2) {
        job_error(j, 403, "Moderators only, or the author for a while");
        return;
    }
    if (ts < 0) {
        job_error(j, 503, REQ_DB_DOWN);
        return;
    }
    if (ts == 0) {
        job_error(j, 404, "No such message");
        return;
    }
    body = views_sent(rss_current(), ts, &len);
    job_reply(j, body, len);
    free(body);
}

/* A moderator's ban or unban; an unban of nobody banned: 404. */
static void
do_ban(struct job *j)
{
    int rc = store_ban_as(writer.pg, j->room, j->login, j->nick, j->moderator,
                          j->limit, j->kind == WRITER_UNBAN);
    size_t len;
    char *body;

    if (rc == -2) {
        job_error(j, 403, "Moderators only");
        return;
    }
    if (rc < 0) {
        job_error(j, 503, REQ_DB_DOWN);
        return;
    }
    if (j->kind == WRITER_UNBAN && rc == 0) {
        job_error(j, 404, "Not banned");
        return;
    }
    body = views_rss(rss_current(), &len);
    job_reply(j, body, len);
    free(body);
}

#define NOT_YOURS "Not your session"

/* Behind a site's login, whether j's session id belongs to another login:
 * 1 (answered 403), 0 (go on), -1 (answered 503). */
static int
refuse_foreign(struct job *j)
{
    int foreign;

    if (!j->login)
        return 0;
    if (store_foreign(writer.pg, &j->id, &j->login, 1, &foreign) < 0) {
        job_error(j, 503, REQ_DB_DOWN);
        return -1;
    }
    if (foreign)
        job_error(j, 403, NOT_YOURS);
    return foreign;
}

static void
do_part(struct job *j)
{
    size_t len;
    char *body;

    if (refuse_foreign(j) != 0)
        return;
    if (store_part(writer.pg, j->id, j->room) < 0) {
        job_error(j, 503, REQ_DB_DOWN);
        return;
    }
    body = views_rss(rss_current(), &len);
    job_reply(j, body, len);
    free(body);
}

static void
do_who(struct job *j)
{
    size_t n, len;
    char **nicks = store_who(writer.pg, j->room, &n);
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

    if (store_stats(writer.pg, &db) < 0) {
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

/* Behind a site's login: answers 403 (or 503) to every send in sends
 * whose session id belongs to another login, and removes it. Returns how
 * many are left. */
static size_t
drop_foreign(struct job **sends, size_t n)
{
    const char **tokens, **logins;
    int *foreign, rc;
    size_t left = 0;

    if (!sends[0]->login) /* one mode for the whole responder */
        return n;
    tokens = xcalloc(n, sizeof(*tokens));
    logins = xcalloc(n, sizeof(*logins));
    foreign = xcalloc(n, sizeof(*foreign));
    for (size_t i = 0; i < n; i++) {
        tokens[i] = sends[i]->id;
        logins[i] = sends[i]->login;
    }
    rc = store_foreign(writer.pg, tokens, logins, n, foreign);
    for (size_t i = 0; i < n; i++) {
        if (rc < 0)
            job_error(sends[i], 503, REQ_DB_DOWN);
        else if (foreign[i])
            job_error(sends[i], 403, NOT_YOURS);
        else
            sends[left++] = sends[i];
    }
    free(tokens);
    free(logins);
    free(foreign);
    return left;
}

/* Takes the n jobs in sends: stores them in one transaction. */
static void
do_sends(struct job **sends, size_t n)
{
    const char **tokens, **rooms, **texts, **mids;
    int64_t *ts;
    char **touched;
    size_t ntouched = 0;
    int rc;

    n = drop_foreign(sends, n);
    if (!n)
        return;
    tokens = xcalloc(n, sizeof(*tokens));
    rooms = xcalloc(n, sizeof(*rooms));
    texts = xcalloc(n, sizeof(*texts));
    mids = xcalloc(n, sizeof(*mids));
    ts = xcalloc(n, sizeof(*ts));
    touched = xcalloc(n, sizeof(*touched));

    for (size_t i = 0; i < n; i++) {
        tokens[i] = sends[i]->id;
        rooms[i] = sends[i]->room;
        texts[i] = sends[i]->text;
        mids[i] = sends[i]->mid;
    }
    rc = store_send(writer.pg, tokens, rooms, texts, mids, n, ts);
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
        } else if (sends[i]->login && store_banned(writer.pg, sends[i]->room,
                                                   sends[i]->login) == 1) {
            /* A ban ended the session: say why. */
            job_error(sends[i], 403, "Banned from this room");
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

    if (!writer.limiter)
        return 1;
    if (now >= writer.next_prune) {
        limiter_prune(writer.limiter, now);
        writer.next_prune = now + 10000;
    }
    return limiter_take(writer.limiter, j->id, now);
}

/* Seconds until a session refused a send has a token again, at the least: one
 * token comes every 1/rate seconds. */
static int
retry_after(void)
{
    return config.send_rate >= 1 ? 1 : (int)(1 / config.send_rate + 0.999);
}

/* Takes the list: answers every job in it. */
static void
run_batch(void *arg, struct job *list)
{
    struct job **sends = xcalloc(WRITER_MAX_BATCH, sizeof(*sends));
    size_t nsends = 0;

    (void)arg;
    while (list) {
        struct job *j = list;

        list = j->next;
        switch ((enum writer_job)j->kind) {
        case WRITER_JOIN:
            do_join(j);
            break;
        case WRITER_PART:
            do_part(j);
            break;
        case WRITER_WHO:
            do_who(j);
            break;
        case WRITER_STATS:
            do_stats(j);
            break;
        case WRITER_DELETE:
            do_delete(j);
            break;
        case WRITER_BAN:
        case WRITER_UNBAN:
            do_ban(j);
            break;
        case WRITER_SEND:
            if (!allowed(j)) {
                job_error_retry(j, 429, "Too many messages, slow down",
                                retry_after());
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

static int64_t
maint_deadline(void *arg)
{
    (void)arg;
    return maint_due();
}

/* What was queued before stopping is stored and answered first; then the
 * last keep-alives. */
static void
maint_tick(void *arg, int idle, int stopping)
{
    (void)arg;
    (void)idle;
    maint_run(writer.pg, mono_ms(), stopping);
}

int
writer_start(void)
{
    static const struct jobq_ops ops = {run_batch, maint_deadline, maint_tick};

    writer.pg =
        pg_new(config.database_url, "pgchat-writer", config.db_timeout_ms);
    if (config.rate_limit)
        writer.limiter = limiter_new(config.send_rate, config.send_burst);
    maint_init();
    writer.q = jobq_start("pgchat-writer", &ops, NULL, 0);
    return writer.q ? 0 : -1;
}

void
writer_stop(void)
{
    jobq_stop(writer.q);
}

int
writer_done(void)
{
    return jobq_done(writer.q);
}

void
writer_join(void)
{
    jobq_free(writer.q);
    writer.q = NULL;
    pg_free(writer.pg);
    writer.pg = NULL;
    limiter_free(writer.limiter);
    writer.limiter = NULL;
}
