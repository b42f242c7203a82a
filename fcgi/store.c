/* store.c -- the statements pgchat runs on PostgreSQL, their parameters
 * and their answers.
 *
 * Each statement calls one of the functions in migrations/, so the rules of
 * ordering and expiry live next to the tables they guard. User text travels
 * only as $n parameters (arrays as text[] literals), never inside SQL. The
 * writer's statements are sent unnamed, so that they work through a
 * transaction pooler; only the LISTEN connection, always direct, prepares
 * the one it runs most.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "views.h"

/* The answer of a statement with one row and one column, or NULL. */
static struct pg_res *
exec1(struct pg *p, const char *what, const char *sql, int n,
      const char *const *params)
{
    struct pg_res *res = pg_exec(p, sql, n, params, NULL);

    if (!res)
        log_error("cannot %s: %s", what, pg_error(p));
    else if (pg_rows(res) < 1) {
        log_error("cannot %s: no answer", what);
        pg_res_free(res);
        res = NULL;
    }
    return res;
}

enum store_join
store_join(struct pg *p, struct store_join_args *a)
{
    char idle[16], cap[16], addr_cap[16], rooms[16];
    const char *params[] = {a->token, a->room,  a->nick, idle,    cap,
                            a->addr,  addr_cap, rooms,   a->login};
    struct pg_res *res;
    enum store_join rc;
    const char *v;

    snprintf(idle, sizeof(idle), "%d", a->idle_seconds);
    snprintf(cap, sizeof(cap), "%d", a->room_cap);
    snprintf(addr_cap, sizeof(addr_cap), "%d", a->addr_cap);
    snprintf(rooms, sizeof(rooms), "%d", a->rooms_per_minute);
    res = exec1(p, "join",
                "SELECT chat_join($1, $2, $3, make_interval(secs => $4), "
                "$5, $6, $7, $8, $9)",
                9, params);
    if (!res)
        return STORE_ERROR;
    v = pg_value(res, 0, 0);
    if (strcmp(v, "joined") == 0)
        rc = STORE_JOINED;
    else if (strcmp(v, "full") == 0)
        rc = STORE_FULL;
    else if (strcmp(v, "addr_full") == 0)
        rc = STORE_ADDR_FULL;
    else if (strcmp(v, "banned") == 0)
        rc = STORE_BANNED;
    else if (strncmp(v, "wait:", 5) == 0) {
        rc = STORE_WAIT;
        a->wait_seconds = atoi(v + 5);
        if (a->wait_seconds < 1)
            a->wait_seconds = 1;
    } else
        rc = STORE_TAKEN;
    pg_res_free(res);
    return rc;
}

int
store_part(struct pg *p, const char *token, const char *room)
{
    const char *params[] = {token, room};
    struct pg_res *res =
        exec1(p, "part", "SELECT chat_part($1, $2)", 2, params);

    if (!res)
        return -1;
    pg_res_free(res);
    return 0;
}

int64_t
store_delete_as(struct pg *p, const char *room, int64_t ts, const char *by,
                int moderator, int window_s)
{
    char v_ts[24], v_window[16];
    const char *params[] = {room, v_ts, by, moderator ? "t" : "f", v_window};
    struct pg_res *res;
    int64_t out;

    snprintf(v_ts, sizeof(v_ts), "%lld", (long long)ts);
    snprintf(v_window, sizeof(v_window), "%d", window_s);
    res = exec1(p, "delete",
                "SELECT chat_delete_as($1, $2, $3, $4, "
                "make_interval(secs => $5))",
                5, params);
    if (!res)
        return -1;
    out = strtoll(pg_value(res, 0, 0), NULL, 10);
    pg_res_free(res);
    return out < 0 ? -2 : out;
}

int
store_ban_as(struct pg *p, const char *room, const char *login, const char *by,
             int moderator, int minutes, int unban)
{
    char v_minutes[16];
    const char *params[] = {room,
                            login,
                            by,
                            moderator ? "t" : "f",
                            minutes > 0 ? v_minutes : NULL,
                            unban ? "t" : "f"};
    struct pg_res *res;
    int n;

    snprintf(v_minutes, sizeof(v_minutes), "%d", minutes);
    res = exec1(p, "ban",
                "SELECT chat_ban_as($1, $2, $3, $4, "
                "make_interval(mins => $5::int), $6)",
                6, params);
    if (!res)
        return -1;
    n = atoi(pg_value(res, 0, 0));
    pg_res_free(res);
    return n < 0 ? -2 : n;
}

int
store_moderates(struct pg *p, const char *login, const char *room)
{
    const char *params[] = {login, room};
    struct pg_res *res = exec1(p, "check a moderator",
                               "SELECT chat_is_moderator($1, $2)", 2, params);
    int yes;

    if (!res)
        return -1;
    yes = strcmp(pg_value(res, 0, 0), "t") == 0;
    pg_res_free(res);
    return yes;
}

int
store_banned(struct pg *p, const char *room, const char *login)
{
    const char *params[] = {login, room};
    struct pg_res *res =
        exec1(p, "check a ban", "SELECT chat_is_banned($1, $2)", 2, params);
    int banned;

    if (!res)
        return -1;
    banned = strcmp(pg_value(res, 0, 0), "t") == 0;
    pg_res_free(res);
    return banned;
}

/* Takes res: its first column as a NULL-terminated array, *n the count. */
static char **
strv_take(struct pg_res *res, size_t *n)
{
    int rows = pg_rows(res);
    char **v = xcalloc((size_t)rows + 1, sizeof(*v));

    for (int i = 0; i < rows; i++)
        v[i] = xstrdup(pg_value(res, i, 0));
    *n = (size_t)rows;
    pg_res_free(res);
    return v;
}

char **
store_who(struct pg *p, const char *room, size_t *n)
{
    const char *params[] = {room};
    struct pg_res *res = pg_exec(
        p, "SELECT DISTINCT nick FROM sessions WHERE room = $1 ORDER BY nick",
        1, params, NULL);

    if (!res) {
        log_error("cannot list a room: %s", pg_error(p));
        return NULL;
    }
    return strv_take(res, n);
}

void
store_strv_free(char **v)
{
    if (!v)
        return;
    for (char **q = v; *q; q++)
        free(*q);
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
store_send(struct pg *p, const char *const *tokens, const char *const *rooms,
           const char *const *texts, const char *const *mids, size_t n,
           int64_t *ts)
{
    char *a_tokens = store_array_literal(tokens, n);
    char *a_rooms = store_array_literal(rooms, n);
    char *a_texts = store_array_literal(texts, n);
    char *a_mids = store_array_literal(mids, n);
    const char *params[] = {a_tokens, a_rooms, a_texts, a_mids};
    struct pg_res *res =
        pg_exec(p,
                "SELECT pos, ts FROM chat_send($1::text[], $2::text[], "
                "$3::text[], $4::text[])",
                4, params, NULL);

    memset(ts, 0, n * sizeof(*ts));
    free(a_tokens);
    free(a_rooms);
    free(a_texts);
    free(a_mids);
    if (!res) {
        log_error("cannot store %zu message%s: %s", n, n == 1 ? "" : "s",
                  pg_error(p));
        return -1;
    }
    for (int i = 0; i < pg_rows(res); i++) {
        long pos = strtol(pg_value(res, i, 0), NULL, 10);

        if (pos >= 1 && (size_t)pos <= n)
            ts[pos - 1] = strtoll(pg_value(res, i, 1), NULL, 10);
    }
    pg_res_free(res);
    return 0;
}

int
store_foreign(struct pg *p, const char *const *tokens,
              const char *const *logins, size_t n, int *foreign)
{
    char *a_tokens = store_array_literal(tokens, n);
    char *a_logins = store_array_literal(logins, n);
    const char *params[] = {a_tokens, a_logins};
    struct pg_res *res =
        pg_exec(p, "SELECT chat_foreign_sessions($1::text[], $2::text[])", 2,
                params, NULL);

    memset(foreign, 0, n * sizeof(*foreign));
    free(a_tokens);
    free(a_logins);
    if (!res) {
        log_error("cannot check whose sessions: %s", pg_error(p));
        return -1;
    }
    for (int i = 0; i < pg_rows(res); i++) {
        long pos = strtol(pg_value(res, i, 0), NULL, 10);

        if (pos >= 1 && (size_t)pos <= n)
            foreign[pos - 1] = 1;
    }
    pg_res_free(res);
    return 0;
}

int
store_touch(struct pg *p, const char *const *tokens, size_t n)
{
    char *a_tokens = store_array_literal(tokens, n);
    const char *params[] = {a_tokens};
    struct pg_res *res = exec1(p, "mark sessions active",
                               "SELECT chat_touch($1::text[])", 1, params);

    free(a_tokens);
    if (!res)
        return -1;
    pg_res_free(res);
    return 0;
}

/* The count a maintenance function answered: NULL means another runner. */
static long long
maintenance_count(struct pg_res *res)
{
    long long n;

    if (!res)
        return -1;
    n = pg_is_null(res, 0, 0) ? -2 : strtoll(pg_value(res, 0, 0), NULL, 10);
    pg_res_free(res);
    return n;
}

long long
store_sweep(struct pg *p, int idle_seconds, const char *runner)
{
    char idle[16];
    const char *params[] = {idle, runner};

    snprintf(idle, sizeof(idle), "%d", idle_seconds);
    return maintenance_count(exec1(
        p, "sweep idle sessions",
        "SELECT chat_sweep_once(make_interval(secs => $1), $2)", 2, params));
}

long long
store_expire(struct pg *p, int days, const char *runner)
{
    char s_days[16];
    const char *params[] = {s_days, runner};

    snprintf(s_days, sizeof(s_days), "%d", days);
    return maintenance_count(exec1(p, "delete old messages",
                                   "SELECT chat_expire_once($1, $2)", 2,
                                   params));
}

int
store_stats(struct pg *p, struct store_stats *out)
{
    struct pg_res *res =
        exec1(p, "count for /stats",
              "SELECT (SELECT coalesce(sum(last_seq), 0) FROM rooms), "
              "(SELECT count(*) FROM sessions), (SELECT count(*) FROM rooms)",
              0, NULL);

    if (!res)
        return -1;
    out->messages = strtoll(pg_value(res, 0, 0), NULL, 10);
    out->sessions = strtoll(pg_value(res, 0, 1), NULL, 10);
    out->rooms = strtoll(pg_value(res, 0, 2), NULL, 10);
    pg_res_free(res);
    return 0;
}

/* Takes res, rows of (ts, nick, type, text, mid) newest first: returns the
 * first n of them, oldest first when reverse is set, else as they came. */
static struct msg_list *
decode_rows(struct pg_res *res, int n, int reverse)
{
    struct msg_list *list = xcalloc(1, sizeof(*list));

    list->items = xcalloc(n ? (size_t)n : 1, sizeof(*list->items));
    for (int i = 0; i < n; i++) {
        struct msg *m = &list->items[reverse ? n - 1 - i : i];

        m->ts = strtoll(pg_value(res, i, 0), NULL, 10);
        m->nick = xstrdup(pg_value(res, i, 1));
        m->type = xstrdup(pg_value(res, i, 2));
        m->text = pg_is_null(res, i, 3) ? NULL : xstrdup(pg_value(res, i, 3));
        m->mid = pg_is_null(res, i, 4) ? NULL : xstrdup(pg_value(res, i, 4));
    }
    list->len = (size_t)n;
    pg_res_free(res);
    return list;
}

int
store_read_begin(struct pg *p, int timeout_ms)
{
    char sql[96];
    struct pg_res *res;

    snprintf(sql, sizeof(sql),
             "BEGIN READ ONLY; SET LOCAL statement_timeout = %d", timeout_ms);
    res = pg_exec(p, sql, 0, NULL, NULL);
    if (!res) {
        log_error("cannot begin a read: %s", pg_error(p));
        return -1;
    }
    pg_res_free(res);
    return 0;
}

void
store_read_end(struct pg *p, int ok)
{
    pg_res_free(pg_exec(p, ok ? "COMMIT" : "ROLLBACK", 0, NULL, NULL));
}

struct msg_list *
store_history(struct pg *p, const char *room, int64_t before, int limit,
              int *more)
{
    char s_before[24], s_limit[16];
    const char *params[] = {room, s_before, s_limit};
    struct pg_res *res;
    int rows;

    snprintf(s_before, sizeof(s_before), "%lld", (long long)before);
    snprintf(s_limit, sizeof(s_limit), "%d", limit);
    res = pg_exec(p,
                  "SELECT ts, nick, type, text, mid FROM chat_before($1, "
                  "$2, $3)",
                  3, params, NULL);
    if (!res) {
        log_error("cannot read the history of '%s': %s", room, pg_error(p));
        return NULL;
    }
    rows = pg_rows(res);
    *more = rows > limit;
    return decode_rows(res, rows > limit ? limit : rows, 1);
}

struct msg_list *
store_search(struct pg *p, const char *room, const char *query, int limit)
{
    char s_limit[16];
    const char *params[] = {room, query, s_limit};
    struct pg_res *res;

    snprintf(s_limit, sizeof(s_limit), "%d", limit);
    res = pg_exec(p,
                  "SELECT ts, nick, type, text, mid FROM chat_search($1, "
                  "$2, $3)",
                  3, params, NULL);
    if (!res) {
        log_error("cannot search '%s': %s", room, pg_error(p));
        return NULL;
    }
    return decode_rows(res, pg_rows(res), 0);
}

/* --- the event loop's ---------------------------------------------------- */

int
store_listen_send(struct pg *p)
{
    static const char setup[] = "PREPARE recv(text, bigint, int) AS "
                                "SELECT head, gap, ts, nick, type, text, mid "
                                "FROM chat_recv($1, $2, $3); "
                                "LISTEN pgchat";
    char sql[sizeof(setup) + 64];
    int abandoned = pg_take_abandoned(p);

    /* A backend the last connection was abandoned on is ended too: while
     * it lives it holds back the notification queue. */
    if (abandoned)
        snprintf(sql, sizeof(sql), "%s; SELECT pg_terminate_backend(%d)", setup,
                 abandoned);
    return pg_send(p, abandoned ? sql : setup, 0, NULL);
}

int
store_recv_send(struct pg *p, const char *room, int64_t since, int limit)
{
    char s_since[24], s_limit[16];
    const char *params[] = {room, s_since, s_limit};

    snprintf(s_since, sizeof(s_since), "%lld", (long long)since);
    snprintf(s_limit, sizeof(s_limit), "%d", limit);
    return pg_send(p, "recv", 3, params);
}

int
store_check_send(struct pg *p)
{
    return pg_send(p, "SELECT 1", 0, NULL);
}

int
store_private_send(struct pg *p)
{
    return pg_send(p, "SELECT room FROM private_rooms", 0, NULL);
}

char **
store_private_decode(struct pg_res *res, size_t *n)
{
    return res ? strv_take(res, n) : NULL;
}

static char *
dup_or_null(const struct pg_res *res, int row, int col)
{
    return pg_is_null(res, row, col) ? NULL : xstrdup(pg_value(res, row, col));
}

struct msg_list *
store_recv_decode(struct pg_res *res, int64_t *head)
{
    struct msg_list *list;
    int rows;

    if (!res)
        return NULL;
    rows = pg_rows(res);
    list = xcalloc(1, sizeof(*list));
    list->items = xcalloc(rows ? (size_t)rows : 1, sizeof(*list->items));
    *head = rows ? strtoll(pg_value(res, 0, 0), NULL, 10) : 0;
    for (int i = 0; i < rows; i++) {
        struct msg *m = &list->items[list->len];

        if (pg_is_null(res, i, 2))
            continue; /* the room exists but nothing is after the cursor */
        list->gap = strcmp(pg_value(res, i, 1), "t") == 0;
        m->ts = strtoll(pg_value(res, i, 2), NULL, 10);
        m->nick = xstrdup(pg_value(res, i, 3));
        m->type = xstrdup(pg_value(res, i, 4));
        m->text = dup_or_null(res, i, 5);
        m->mid = dup_or_null(res, i, 6);
        list->len++;
    }
    pg_res_free(res);
    return list;
}

/* Reads a decimal int64 at *s and the space after it, if any. Returns 0,
 * or -1 when *s holds no number. */
static int
take_number(char **s, int64_t *out)
{
    char *end;

    *out = strtoll(*s, &end, 10);
    if (end == *s || (*end != ' ' && *end != '\0'))
        return -1;
    *s = *end ? end + 1 : end;
    return 0;
}

int
store_notify_parse(char *payload, struct store_notice *n)
{
    char *space = strchr(payload, ' '), *rest;

    n->prev = -1;
    n->batch = NULL;
    n->private_rooms = strcmp(payload, "*private") == 0;
    if (n->private_rooms)
        return 0;
    if (!space || space == payload)
        return -1;
    *space = '\0';
    n->room = payload;
    rest = space + 1;
    if (take_number(&rest, &n->head) < 0)
        return -1;
    if (*rest && take_number(&rest, &n->prev) == 0 && *rest)
        n->batch = views_parse_batch(rest);
    if (!n->batch)
        n->prev = -1; /* a batch that cannot be read is not used */
    return 0;
}
