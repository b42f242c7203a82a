/* pg.c -- one PostgreSQL connection, and every wait on it bounded; the only
 * file that includes libpq-fe.h.
 *
 * libpq's synchronous calls wait as long as the kernel lets them: a backend
 * that stops answering (SIGSTOP, a network black hole) holds PQexec for the
 * TCP retransmission time, about 15 minutes. Here every connection is
 * non-blocking. The event loop drives it step by step; a thread that may
 * wait does so in poll(2) with a deadline, never in libpq. TCP keep-alives
 * and tcp_user_timeout make the kernel give up on a silent peer too.
 */
#include "pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "util.h"

#define PG_BACKOFF_MIN_MS 250
#define PG_BACKOFF_MAX_MS 5000

enum pg_state { PG_CLOSED, PG_CONNECTING, PG_IDLE, PG_BUSY };

struct pg {
    PGconn *conn;
    enum pg_state state;
    PGresult *res; /* the newest result of the statement in flight */
    int failed;    /* a result of the statement in flight was an error */
    char *conninfo, *app_name;
    int timeout_ms;
    int64_t retry_at; /* no new connection before this mono_ms() */
    int backoff_ms;
    int abandoned; /* pid of a backend given up on, to end */
    char error[256];
};

struct pg *
pg_new(const char *conninfo, const char *app_name, int timeout_ms)
{
    struct pg *p = xcalloc(1, sizeof(*p));

    p->conninfo = xstrdup(conninfo);
    p->app_name = xstrdup(app_name);
    p->timeout_ms = timeout_ms;
    return p;
}

void
pg_free(struct pg *p)
{
    if (!p)
        return;
    pg_close(p);
    free(p->conninfo);
    free(p->app_name);
    free(p);
}

/* Keeps libpq's message, without its newline, for pg_error(). */
static void
keep_error(struct pg *p, const char *what)
{
    const char *msg = p->conn ? PQerrorMessage(p->conn) : "out of memory";
    size_t n;

    snprintf(p->error, sizeof(p->error), "%s%s%s", what, *msg ? ": " : "", msg);
    n = strlen(p->error);
    while (n && (p->error[n - 1] == '\n' || p->error[n - 1] == ' '))
        p->error[--n] = '\0';
}

void
pg_close(struct pg *p)
{
    PQclear(p->res);
    p->res = NULL;
    /* PQfinish writes a Terminate message; on a non-blocking socket that
     * cannot wait, even for a backend that is not reading. */
    PQfinish(p->conn);
    p->conn = NULL;
    p->state = PG_CLOSED;
}

void
pg_abandon(struct pg *p)
{
    if (p->state == PG_BUSY || p->state == PG_IDLE)
        p->abandoned = PQbackendPID(p->conn);
    pg_close(p);
}

int
pg_take_abandoned(struct pg *p)
{
    int pid = p->abandoned;

    p->abandoned = 0;
    return pid;
}

/* Closes after a failure; the next connection waits for the back-off. */
static int
fail(struct pg *p, const char *what)
{
    keep_error(p, what);
    pg_close(p);
    return -1;
}

int
pg_is_open(const struct pg *p)
{
    return p->state == PG_IDLE || p->state == PG_BUSY;
}

int
pg_fd(const struct pg *p)
{
    return p->conn ? PQsocket(p->conn) : -1;
}

const char *
pg_error(const struct pg *p)
{
    return p->error;
}

int64_t
pg_retry_at(const struct pg *p)
{
    return p->retry_at;
}

static void
backoff(struct pg *p)
{
    p->backoff_ms =
        backoff_next(p->backoff_ms, PG_BACKOFF_MIN_MS, PG_BACKOFF_MAX_MS);
    p->retry_at = mono_ms() + p->backoff_ms;
}

/* libpq prints notices to stderr, which is the log; but a notice may
 * quote what a statement was given (websearch_to_tsquery's "query doesn't
 * contain lexemes" quotes the search), and user text is never logged. */
static void
drop_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int
pg_start(struct pg *p, enum pg_wait *wait)
{
    char timeout_s[16], user_timeout[16], idle[16];
    /* The URI comes last so that its own settings win over these. */
    const char *keys[] = {"application_name",
                          "connect_timeout",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "dbname",
                          NULL};
    const char *values[] = {p->app_name, timeout_s,    "1",         idle, "1",
                            "3",         user_timeout, p->conninfo, NULL};
    int secs = (p->timeout_ms + 999) / 1000;

    pg_close(p);
    if (mono_ms() < p->retry_at) {
        snprintf(p->error, sizeof(p->error), "waiting to reconnect");
        return -1;
    }
    backoff(p); /* cleared once connected */
    snprintf(timeout_s, sizeof(timeout_s), "%d", secs < 2 ? 2 : secs);
    snprintf(idle, sizeof(idle), "%d", secs);
    snprintf(user_timeout, sizeof(user_timeout), "%d", p->timeout_ms);
    p->conn = PQconnectStartParams(keys, values, 1);
    if (!p->conn || PQstatus(p->conn) == CONNECTION_BAD)
        return fail(p, "cannot connect");
    PQsetNoticeProcessor(p->conn, drop_notice, NULL);
    p->state = PG_CONNECTING;
    *wait = PG_WAIT_WRITE; /* as if PQconnectPoll said PGRES_POLLING_WRITING */
    return 0;
}

int
pg_send(struct pg *p, const char *sql, int n, const char *const *params)
{
    int ok;

    if (p->state != PG_IDLE) {
        snprintf(p->error, sizeof(p->error), "not connected");
        return -1;
    }
    if (n == 0)
        ok = PQsendQuery(p->conn, sql); /* may hold several statements */
    else if (!strchr(sql, ' '))
        ok = PQsendQueryPrepared(p->conn, sql, n, params, NULL, NULL, 0);
    else
        ok = PQsendQueryParams(p->conn, sql, n, NULL, params, NULL, NULL, 0);
    if (!ok)
        return fail(p, "cannot send a statement");
    p->state = PG_BUSY;
    p->failed = 0;
    return 0;
}

/* Collects the results that are complete. Returns 1 when the last has
 * come, 0 when more must be read. */
static int
collect(struct pg *p)
{
    while (!PQisBusy(p->conn)) {
        PGresult *res = PQgetResult(p->conn);
        ExecStatusType st;

        if (!res) {
            p->state = PG_IDLE;
            return 1;
        }
        st = PQresultStatus(res);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && !p->failed) {
            keep_error(p, "statement failed");
            log_error("%s: %s", p->app_name, p->error);
            p->failed = 1;
        }
        PQclear(p->res);
        p->res = res;
    }
    return 0;
}

int
pg_step(struct pg *p, enum pg_wait *wait)
{
    *wait = PG_WAIT_NONE;
    switch (p->state) {
    case PG_CLOSED:
        return -1;
    case PG_CONNECTING:
        switch (PQconnectPoll(p->conn)) {
        case PGRES_POLLING_READING:
            *wait = PG_WAIT_READ;
            return 0;
        case PGRES_POLLING_WRITING:
            *wait = PG_WAIT_WRITE;
            return 0;
        case PGRES_POLLING_OK:
            if (PQsetnonblocking(p->conn, 1) < 0)
                return fail(p, "cannot make the connection non-blocking");
            p->state = PG_IDLE;
            p->backoff_ms = 0;
            p->retry_at = 0;
            return 1;
        default:
            return fail(p, "cannot connect");
        }
    case PG_IDLE:
        return 1;
    case PG_BUSY: {
        int flushed = PQflush(p->conn);

        if (flushed < 0 || !PQconsumeInput(p->conn))
            return fail(p, "connection lost");
        if (collect(p))
            return 1;
        /* Unsent bytes: wait for either, as libpq asks (the server may
         * need to be read before it reads more). */
        *wait = flushed ? PG_WAIT_READ | PG_WAIT_WRITE : PG_WAIT_READ;
        return 0;
    }
    }
    return -1;
}

struct pg_res *
pg_take(struct pg *p)
{
    PGresult *res = p->res;

    p->res = NULL;
    if (p->failed) {
        PQclear(res);
        return NULL;
    }
    return (struct pg_res *)res;
}

int
pg_read_idle(struct pg *p)
{
    if (p->state != PG_IDLE)
        return p->state == PG_BUSY ? 0 : -1;
    if (!PQconsumeInput(p->conn) || PQstatus(p->conn) == CONNECTION_BAD)
        return fail(p, "connection lost");
    return 0;
}

char *
pg_notify(struct pg *p)
{
    PGnotify *note;
    char *payload;

    if (!p->conn || !(note = PQnotifies(p->conn)))
        return NULL;
    payload = xstrdup(note->extra);
    PQfreemem(note);
    return payload;
}

/* --- waiting, bounded ---------------------------------------------------- */

/* Waits in poll(2) until the socket allows what wait says or deadline
 * passes. Returns 0, or -1 on timeout. */
static int
wait_socket(struct pg *p, enum pg_wait wait, int64_t deadline)
{
    struct pollfd pfd = {.fd = pg_fd(p)};

    if (wait & PG_WAIT_READ)
        pfd.events |= POLLIN;
    if (wait & PG_WAIT_WRITE)
        pfd.events |= POLLOUT;
    for (;;) {
        int64_t left = deadline - mono_ms();
        int n;

        if (left <= 0)
            return -1;
        n = poll(&pfd, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* Waits for what wait says (nothing: steps at once), then steps, until
 * the connection or the statement is done. Returns 0, or -1 when it failed
 * or timed out (*timed_out set), the connection closed. */
static int
run_until_done(struct pg *p, enum pg_wait wait, int64_t deadline,
               int *timed_out)
{
    for (;;) {
        int rc;

        if (wait && wait_socket(p, wait, deadline) < 0) {
            *timed_out = 1;
            stats_add(&stats_all->db_timeouts, 1);
            snprintf(p->error, sizeof(p->error),
                     "no answer within %d ms, connection closed",
                     p->timeout_ms);
            pg_abandon(p);
            return -1;
        }
        rc = pg_step(p, &wait);
        if (rc != 0)
            return rc > 0 ? 0 : -1;
    }
}

/* Ends the backend a timed-out call was abandoned on (a SIGTERM waits for a
 * stopped one to wake, and ends it before it reads another statement). */
static void
end_abandoned(struct pg *p, int64_t deadline, int *timed_out)
{
    char pid[16];
    const char *params[] = {pid};
    int n = pg_take_abandoned(p);

    if (!n)
        return;
    snprintf(pid, sizeof(pid), "%d", n);
    if (pg_send(p, "SELECT pg_terminate_backend($1::int)", 1, params) == 0 &&
        run_until_done(p, PG_WAIT_NONE, deadline, timed_out) == 0)
        PQclear((PGresult *)pg_take(p));
}

struct pg_res *
pg_exec(struct pg *p, const char *sql, int n, const char *const *params,
        int *timed_out)
{
    int64_t deadline = mono_ms() + p->timeout_ms;
    int dummy = 0;
    enum pg_wait wait = PG_WAIT_NONE;

    if (!timed_out)
        timed_out = &dummy;
    *timed_out = 0;
    /* A connection the server closed while idle (a restart) is noticed
     * here, before a statement is lost on it. */
    if (p->state == PG_IDLE && pg_read_idle(p) < 0)
        log_warn("%s: %s, reconnecting", p->app_name, p->error);
    if (p->state != PG_IDLE) {
        if (pg_start(p, &wait) < 0 ||
            run_until_done(p, wait, deadline, timed_out) < 0)
            return NULL;
        log_info("%s: connected to the database", p->app_name);
        stats_add(&stats_all->db_reconnects, 1);
        end_abandoned(p, deadline, timed_out);
    }
    if (pg_send(p, sql, n, params) < 0 ||
        run_until_done(p, PG_WAIT_NONE, deadline, timed_out) < 0)
        return NULL;
    return pg_take(p);
}

/* --- results ------------------------------------------------------------ */

int
pg_rows(const struct pg_res *r)
{
    return PQntuples((const PGresult *)r);
}

const char *
pg_value(const struct pg_res *r, int row, int col)
{
    return PQgetvalue((const PGresult *)r, row, col);
}

int
pg_is_null(const struct pg_res *r, int row, int col)
{
    return PQgetisnull((const PGresult *)r, row, col);
}

void
pg_res_free(struct pg_res *r)
{
    PQclear((PGresult *)r);
}
