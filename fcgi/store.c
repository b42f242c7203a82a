/* store.c -- messages and sessions in PostgreSQL; the only file that
 * includes libpq-fe.h.
 *
 * Every statement is prepared once per connection and calls one of the
 * functions in migrations/, so the rules of ordering and expiry live next to
 * the tables they guard. User text travels only as $n parameters (arrays as
 * text[] literals), never inside SQL.
 */
#include "store.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct store {
    PGconn *conn;
    char *conninfo;
    int listen;
    int up;        /* connected and statements prepared */
    int64_t retry; /* mono_ms() before which no reconnect is tried */
};

static const struct statement {
    const char *name;
    const char *sql;
} statements[] = {
    {"join", "SELECT chat_join($1, $2, $3, make_interval(secs => $4), $5)"},
    {"part", "SELECT chat_part($1, $2)"},
    {"who", "SELECT nick FROM sessions WHERE room = $1 ORDER BY nick"},
    {"send", "SELECT chat_send($1::text[], $2::text[], $3::text[])"},
    {"recv", "SELECT head, gap, ts, nick, type, text "
             "FROM chat_recv($1, $2, $3)"},
    {"touch", "SELECT chat_touch($1::text[])"},
    {"sweep", "SELECT chat_sweep(make_interval(secs => $1))"},
    {"stats", "SELECT (SELECT coalesce(sum(last_seq), 0) FROM rooms), "
              "(SELECT count(*) FROM sessions), (SELECT count(*) FROM rooms)"},
    {"ping", "SELECT 1"},
    {"expire", "SELECT chat_expire($1)"},
};

/* Reconnecting to a database that is down is retried at most this often,
 * so that a burst of requests during an outage does not become a burst of
 * connection attempts. */
#define STORE_RETRY_MS 500

struct store *
store_new(const char *conninfo, int listen)
{
    struct store *st = xcalloc(1, sizeof(*st));

    st->conninfo = xstrdup(conninfo);
    st->listen = listen;
    store_connect(st);
    return st;
}

void
store_free(struct store *st)
{
    if (!st)
        return;
    PQfinish(st->conn);
    free(st->conninfo);
    free(st);
}

static int
prepare_all(struct store *st)
{
    for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++) {
        PGresult *res =
            PQprepare(st->conn, statements[i].name, statements[i].sql, 0, NULL);
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

        if (!ok)
            log_error("cannot prepare '%s': %s", statements[i].name,
                      PQerrorMessage(st->conn));
        PQclear(res);
        if (!ok)
            return -1;
    }
    if (st->listen) {
        PGresult *res = PQexec(st->conn, "LISTEN pgchat");
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

        if (!ok)
            log_error("cannot listen: %s", PQerrorMessage(st->conn));
        PQclear(res);
        if (!ok)
            return -1;
    }
    return 0;
}

int
store_connect(struct store *st)
{
    /* The URI comes last so that its own settings win over these. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname",
                          NULL};
    /* The listening connection is named apart, so that an operator (or a
     * test) can tell it from the writer's in pg_stat_activity. */
    const char *values[] = {"5", st->listen ? "pgchat-listen" : "pgchat",
                            st->conninfo, NULL};

    if (st->up && PQstatus(st->conn) == CONNECTION_OK)
        return 0;
    if (mono_ms() < st->retry)
        return -1;
    st->up = 0;
    PQfinish(st->conn);
    st->conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(st->conn) != CONNECTION_OK) {
        log_warn("cannot connect to the database: %s",
                 PQerrorMessage(st->conn));
        st->retry = mono_ms() + STORE_RETRY_MS;
        return -1;
    }
    if (prepare_all(st) < 0) {
        st->retry = mono_ms() + STORE_RETRY_MS;
        return -1;
    }
    st->up = 1;
    log_info("connected to the database%s", st->listen ? " (listening)" : "");
    return 1;
}

int
store_socket(struct store *st)
{
    return st->up ? PQsocket(st->conn) : -1;
}

/* Runs a prepared statement. Returns its result, which the caller clears,
 * or NULL on failure (logged, and the connection marked for a reconnect
 * if it broke). */
static PGresult *
run(struct store *st, const char *name, int nparams, const char *const *params)
{
    PGresult *res;
    ExecStatusType status;

    if (store_connect(st) < 0)
        return NULL;
    res = PQexecPrepared(st->conn, name, nparams, params, NULL, NULL, 0);
    status = PQresultStatus(res);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        return res;
    log_error("cannot run '%s': %s", name, PQerrorMessage(st->conn));
    PQclear(res);
    if (PQstatus(st->conn) != CONNECTION_OK)
        st->up = 0;
    return NULL;
}

enum store_join
store_join(struct store *st, const char *token, const char *room,
           const char *nick, int idle_seconds, int room_cap)
{
    char idle[16], cap[16];
    const char *params[] = {token, room, nick, idle, cap};
    PGresult *res;
    enum store_join rc;
    const char *v;

    snprintf(idle, sizeof(idle), "%d", idle_seconds);
    snprintf(cap, sizeof(cap), "%d", room_cap);
    res = run(st, "join", 5, params);
    if (!res)
        return STORE_ERROR;
    v = PQgetvalue(res, 0, 0);
    if (strcmp(v, "joined") == 0)
        rc = STORE_JOINED;
    else if (strcmp(v, "full") == 0)
        rc = STORE_FULL;
    else
        rc = STORE_TAKEN;
    PQclear(res);
    return rc;
}

int
store_part(struct store *st, const char *token, const char *room)
{
    const char *params[] = {token, room};
    PGresult *res = run(st, "part", 2, params);

    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

char **
store_who(struct store *st, const char *room, size_t *n)
{
    const char *params[] = {room};
    PGresult *res = run(st, "who", 1, params);
    char **v;
    int rows;

    if (!res)
        return NULL;
    rows = PQntuples(res);
    v = xcalloc(rows + 1, sizeof(*v));
    for (int i = 0; i < rows; i++)
        v[i] = xstrdup(PQgetvalue(res, i, 0));
    *n = rows;
    PQclear(res);
    return v;
}

void
store_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

char *
store_array_literal(const char *const *v, size_t n)
{
    size_t cap = 2, len = 0;
    char *out;

    for (size_t i = 0; i < n; i++)
        cap += v[i] ? 2 * strlen(v[i]) + 3 : 5;
    out = xmalloc(cap + 1);
    out[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            out[len++] = ',';
        if (!v[i]) {
            memcpy(out + len, "NULL", 4);
            len += 4;
            continue;
        }
        out[len++] = '"';
        for (const char *p = v[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                out[len++] = '\\';
            out[len++] = *p;
        }
        out[len++] = '"';
    }
    out[len++] = '}';
    out[len] = '\0';
    return out;
}

int
store_send(struct store *st, const char *const *tokens,
           const char *const *rooms, const char *const *texts, size_t n,
           unsigned char *accepted)
{
    char *a_tokens = store_array_literal(tokens, n);
    char *a_rooms = store_array_literal(rooms, n);
    char *a_texts = store_array_literal(texts, n);
    const char *params[] = {a_tokens, a_rooms, a_texts};
    PGresult *res = run(st, "send", 3, params);
    int rc = -1;

    memset(accepted, 0, n);
    if (!res)
        goto out;
    for (int i = 0; i < PQntuples(res); i++) {
        long pos = strtol(PQgetvalue(res, i, 0), NULL, 10);

        if (pos >= 1 && (size_t)pos <= n)
            accepted[pos - 1] = 1;
    }
    rc = 0;
out:
    PQclear(res);
    free(a_tokens);
    free(a_rooms);
    free(a_texts);
    return rc;
}

static char *
dup_or_null(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL
                                      : xstrdup(PQgetvalue(res, row, col));
}

struct msg_list *
store_recv(struct store *st, const char *room, int64_t since, int limit,
           int64_t *head)
{
    char s_since[24], s_limit[16];
    const char *params[] = {room, s_since, s_limit};
    struct msg_list *list;
    PGresult *res;
    int rows;

    snprintf(s_since, sizeof(s_since), "%lld", (long long)since);
    snprintf(s_limit, sizeof(s_limit), "%d", limit);
    res = run(st, "recv", 3, params);
    if (!res)
        return NULL;
    rows = PQntuples(res);
    list = xcalloc(1, sizeof(*list));
    list->items = xcalloc(rows ? rows : 1, sizeof(*list->items));
    *head = rows ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    for (int i = 0; i < rows; i++) {
        struct msg *m = &list->items[list->len];

        if (PQgetisnull(res, i, 2))
            continue; /* the room exists but nothing is after the cursor */
        list->gap = strcmp(PQgetvalue(res, i, 1), "t") == 0;
        m->ts = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        m->nick = xstrdup(PQgetvalue(res, i, 3));
        m->type = xstrdup(PQgetvalue(res, i, 4));
        m->text = dup_or_null(res, i, 5);
        list->len++;
    }
    PQclear(res);
    return list;
}

int
store_touch(struct store *st, const char *const *tokens, size_t n)
{
    char *a_tokens = store_array_literal(tokens, n);
    const char *params[] = {a_tokens};
    PGresult *res = run(st, "touch", 1, params);

    free(a_tokens);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int
store_sweep(struct store *st, int idle_seconds)
{
    char idle[16];
    const char *params[] = {idle};
    PGresult *res;
    int n;

    snprintf(idle, sizeof(idle), "%d", idle_seconds);
    res = run(st, "sweep", 1, params);
    if (!res)
        return -1;
    n = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

int
store_stats(struct store *st, struct store_stats *out)
{
    PGresult *res = run(st, "stats", 0, NULL);

    if (!res)
        return -1;
    out->messages = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    out->sessions = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    out->rooms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);
    return 0;
}

int
store_ping(struct store *st)
{
    PGresult *res = run(st, "ping", 0, NULL);

    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

long long
store_expire(struct store *st, int days)
{
    char s_days[16];
    const char *params[] = {s_days};
    PGresult *res;
    long long n;

    snprintf(s_days, sizeof(s_days), "%d", days);
    res = run(st, "expire", 1, params);
    if (!res)
        return -1;
    n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

int
store_notifies(struct store *st,
               void (*fn)(const char *room, int64_t head, void *arg), void *arg)
{
    PGnotify *note;

    if (!st->up)
        return -1;
    if (!PQconsumeInput(st->conn)) {
        log_error("lost the listening connection: %s",
                  PQerrorMessage(st->conn));
        st->up = 0;
        return -1;
    }
    while ((note = PQnotifies(st->conn))) {
        char *space = strrchr(note->extra, ' ');

        if (space) {
            *space = '\0';
            fn(note->extra, strtoll(space + 1, NULL, 10), arg);
        }
        PQfreemem(note);
    }
    return 0;
}
