/* routes.c -- the table of endpoints and the checks every request passes
 * before it reaches the event loop or the writer.
 *
 * Everything that can be decided from the request alone is decided here, on
 * the loop thread, so that the writer and the loop only ever see
 * well-formed requests.
 */
#include "routes.h"

#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "archive.h"
#include "auth.h"
#include "config.h"
#include "hold.h"
#include "limit.h"
#include "private.h"
#include "moderate.h"
#include "recv.h"
#include "request.h"
#include "stats.h"
#include "token.h"
#include "util.h"
#include "valid.h"
#include "views.h"
#include "writer.h"

/* The session id: from the X-Pgchat-Id header (our client, so that no id
 * travels in a URL), the form body, or the query string (the classic
 * client). Borrowed; NULL when absent. */
static const char *
session_id(const struct req *r)
{
    const char *id = req_env(r, "HTTP_X_PGCHAT_ID");

    return id ? id : req_param(r, "id");
}

/* Behind a site's login, the user a session id must belong to for this
 * request to use it (the writer refuses another's with 403); NULL
 * otherwise. Borrowed from r; handle() has checked it. */
static const char *
session_owner(const struct req *r)
{
    return auth_required(r) ? req_env(r, "PGCHAT_USER") : NULL;
}

/* Writes into buf the origin of the pages this request's own site
 * serves, as a browser writes it: scheme://host, and :port unless it is
 * the scheme's default. A Host without a port (nginx's $host has none)
 * means the port nginx took the request on. Returns 0, or -1 when the
 * request names no host. */
static int
own_origin(const struct req *r, char *buf, size_t size)
{
    const char *https = req_env(r, "HTTPS");
    const char *host = req_env(r, "HTTP_HOST");
    const char *port = req_env(r, "SERVER_PORT");
    int tls = https && strcasecmp(https, "on") == 0;
    const char *sep, *dflt = tls ? "443" : "80";
    size_t hlen;

    if (!host || !*host)
        return -1;
    if (host[0] == '[') { /* an IPv6 literal: the port follows ']' */
        sep = strchr(host, ']');
        sep = sep && sep[1] == ':' ? sep + 1 : NULL;
    } else {
        sep = strchr(host, ':');
    }
    hlen = sep ? (size_t)(sep - host) : strlen(host);
    if (sep)
        port = sep + 1;
    if (port && strcmp(port, dflt) == 0)
        port = NULL;
    snprintf(buf, size, "%s://%.*s%s%s", tls ? "https" : "http", (int)hlen,
             host, port ? ":" : "", port ? port : "");
    return 0;
}

/* Whether the browser says another site made this request: any web page
 * could otherwise make its visitors join, send or part. A request with
 * neither header (curl, the classic client in an old browser) is taken.
 * Under "Referrer-Policy: no-referrer" (nginx.conf) a browser sends
 * "Origin: null" even from our own page; Sec-Fetch-Site then vouches. */
static int
cross_site(const struct req *r)
{
    const char *site = req_env(r, "HTTP_SEC_FETCH_SITE");
    const char *origin = req_env(r, "HTTP_ORIGIN");
    char own[300];

    if (site &&
        (strcmp(site, "cross-site") == 0 || strcmp(site, "same-site") == 0))
        return 1;
    if (!origin)
        return 0;
    if (strcmp(origin, "null") == 0)
        return !site || strcmp(site, "same-origin") != 0;
    /* Scheme, host and port, exactly: another port of the same host is
     * another site (another user's server, say). */
    return own_origin(r, own, sizeof(own)) < 0 || strcasecmp(origin, own) != 0;
}

static void
handle_who(struct req *r)
{
    const char *room;

    if (auth_take_room(r, &room) == 0)
        writer_submit(job_new(r, WRITER_WHO, room));
}

static void
handle_join(struct req *r)
{
    const char *nick = req_param(r, "nick"), *room, *login = NULL;
    struct job *j;
    int mod;

    /* Behind a login the nick is the user's name, whatever was asked
     * for; handle() has checked it. */
    if (auth_required(r))
        nick = login = req_env(r, "PGCHAT_USER");
    if (!nick || !valid_nick(nick, strlen(nick))) {
        req_error(r, 400, "Bad nick.");
        return;
    }
    if (auth_take_room(r, &room) < 0 || (mod = auth_moderator(r)) < 0)
        return;
    j = job_new(r, WRITER_JOIN, room);
    j->nick = nick;
    j->login = login;
    j->moderator = mod;
    j->addr = req_env(r, "REMOTE_ADDR");
    j->token = token_new();
    if (!j->token) {
        free(j);
        req_error(r, 503, "Cannot create a session, try again");
        return;
    }
    req_session_cookie(r, room, j->token, j->cookie, sizeof(j->cookie));
    writer_submit(j);
}

static void
handle_part(struct req *r)
{
    const char *id = session_id(r), *room;
    struct job *j;

    if (auth_take_room(r, &room) < 0)
        return;
    if (!id || !valid_id(id, strlen(id))) {
        req_ok(r); /* names no session: nothing to end */
        return;
    }
    j = job_new(r, WRITER_PART, room);
    j->id = id;
    j->login = session_owner(r);
    req_session_cookie(r, room, NULL, j->cookie, sizeof(j->cookie));
    writer_submit(j);
}

static void
handle_send(struct req *r)
{
    const char *text = req_param(r, "text"), *id = session_id(r), *room;
    const char *mid = req_param(r, "mid");
    struct job *j;

    if (auth_take_room(r, &room) < 0)
        return;
    /* An id that cannot be a token is refused here: it must not reach
     * the database, where one malformed parameter would fail the whole
     * batch of sends it travels in. */
    if (!id || !valid_id(id, strlen(id))) {
        req_error(r, 400, "No such session id");
        return;
    }
    if (mid && !valid_mid(mid, strlen(mid))) {
        req_error(r, 400, "Bad mid");
        return;
    }
    switch (valid_text(text, text ? strlen(text) : 0, config.max_message)) {
    case VALID_TEXT_EMPTY:
        req_error(r, 400, "Empty message");
        return;
    case VALID_TEXT_TOO_LONG:
        req_error(r, 400, "Message too long");
        return;
    case VALID_TEXT_BAD_UTF8:
        req_error(r, 400, "Message is not valid UTF-8");
        return;
    case VALID_TEXT_CONTROL:
        req_error(r, 400, "Message has control characters");
        return;
    case VALID_TEXT_OK:
        break;
    }
    j = job_new(r, WRITER_SEND, room);
    j->id = id;
    j->login = session_owner(r);
    j->text = text;
    j->mid = mid;
    writer_submit(j);
}

/* Rooms a reader makes exist cost the worker memory and a window: one
 * address may make at most PGCHAT_ADDR_ROOMS a minute exist here (bursts
 * as large), or its readers could crowd out every other room. Returns 0,
 * or -1 after answering 429. */
static int
room_allowed(struct req *r, const char *room)
{
    static struct limiter *makers;
    static int64_t next_prune;
    const char *addr = req_env(r, "REMOTE_ADDR");
    int64_t now = mono_ms();

    if (!config.addr_rooms || !addr || recv_holds_room(room))
        return 0;
    if (!makers)
        makers = limiter_new(config.addr_rooms / 60.0, config.addr_rooms);
    if (now >= next_prune) {
        limiter_prune(makers, now);
        next_prune = now + 10000;
    }
    if (limiter_take(makers, addr, now))
        return 0;
    req_error_retry(r, 429, "Too many new rooms, slow down",
                    60 / config.addr_rooms + 1);
    return -1;
}

static void
handle_recv(struct req *r)
{
    const char *id = session_id(r), *room;
    int64_t since;

    if (valid_since(req_param(r, "since"), &since) < 0) {
        req_error(r, 400, "Must supply since parameter");
        return;
    }
    if (auth_take_room(r, &room) < 0)
        return;
    /* Reading needs no session; an id is only used as a keep-alive. */
    if (id && !valid_id(id, strlen(id)))
        id = NULL;
    if (room_allowed(r, room) < 0)
        return;
    recv_recv(r, room, since, id);
}

/* The session of this room's cookie (set at join, for the event stream,
 * which cannot send a header), or NULL. Borrowed from the parameters: the
 * value is cut at its end in place. */
static const char *
cookie_id(struct req *r, const char *room)
{
    char name[80];
    char *p = (char *)req_env(r, "HTTP_COOKIE");
    size_t n = (size_t)snprintf(name, sizeof(name), "pgchat_%s=", room);

    for (; p && *p; p += strspn(p, "; ")) {
        char *end = p + strcspn(p, ";");

        if (strncmp(p, name, n) == 0) {
            *end = '\0';
            return valid_id(p + n, strlen(p + n)) ? p + n : NULL;
        }
        p = end;
    }
    return NULL;
}

static void
handle_events(struct req *r)
{
    const char *last = req_env(r, "HTTP_LAST_EVENT_ID"), *room;
    int64_t since;

    /* A reconnecting EventSource says where it was in Last-Event-ID. */
    if (valid_since(last ? last : req_param(r, "since"), &since) < 0) {
        req_error(r, 400, "Must supply since parameter");
        return;
    }
    if (auth_take_room(r, &room) < 0 || room_allowed(r, room) < 0)
        return;
    recv_events(r, room, since, cookie_id(r, room));
}

/* What the answering worker knows without waiting: its LISTEN connection
 * is up and answers within the bound. */
static void
handle_healthz(struct req *r)
{
    size_t len;
    char *body;

    if (!recv_healthy()) {
        req_error(r, 503, REQ_DB_DOWN);
        return;
    }
    body = views_health(rss_current(), &len);
    req_reply(r, 200, body, len);
    free(body);
}

#define HISTORY_LIMIT_DEFAULT 50
#define HISTORY_LIMIT_MAX 200

/* GET /history?room=R&before=T&limit=N: the newest N messages before T
 * (default: the newest of all), oldest first. */
static void
handle_history(struct req *r)
{
    const char *before = req_param(r, "before"), *limit = req_param(r, "limit");
    int64_t v_before = INT64_MAX, v_limit = HISTORY_LIMIT_DEFAULT;
    const char *room;
    struct job *j;

    if (auth_take_room(r, &room) < 0)
        return;
    if (before && valid_number(before, 0, INT64_MAX, &v_before) < 0) {
        req_error(r, 400, "Bad before");
        return;
    }
    if (limit && valid_number(limit, 1, HISTORY_LIMIT_MAX, &v_limit) < 0) {
        req_error(r, 400, "Bad limit");
        return;
    }
    j = job_new(r, ARCHIVE_HISTORY, room);
    j->addr = req_env(r, "REMOTE_ADDR");
    j->before = v_before;
    j->limit = (int)v_limit;
    archive_submit(j);
}

#define SEARCH_LIMIT_DEFAULT 20
#define SEARCH_LIMIT_MAX 50
#define SEARCH_QUERY_MAX 200 /* characters */

/* GET /search?room=R&q=Q&limit=N: the newest N messages matching Q,
 * newest first. Q is 1-200 characters of UTF-8: anything else would only
 * cost the database a query it cannot answer well. */
static void
handle_search(struct req *r)
{
    const char *q = req_param(r, "q"), *limit = req_param(r, "limit");
    int64_t v_limit = SEARCH_LIMIT_DEFAULT;
    const char *room;
    struct job *j;

    if (auth_take_room(r, &room) < 0)
        return;
    if (!q || valid_query(q, strlen(q), SEARCH_QUERY_MAX) != 1) {
        req_error(r, 400, "Bad query");
        return;
    }
    if (!valid_query_finds(q, strlen(q))) {
        req_error(r, 400, "Query needs a word to find");
        return;
    }
    if (limit && valid_number(limit, 1, SEARCH_LIMIT_MAX, &v_limit) < 0) {
        req_error(r, 400, "Bad limit");
        return;
    }
    j = job_new(r, ARCHIVE_SEARCH, room);
    j->addr = req_env(r, "REMOTE_ADDR");
    j->query = q;
    j->limit = (int)v_limit;
    archive_submit(j);
}

/* GET /limits: what the client must know to stay inside the rules, so
 * that it need not copy them. */
static void
handle_limits(struct req *r)
{
    struct views_limits l = {
        .nick_max = VALID_NICK_MAX,
        .room_max = VALID_ROOM_MAX,
        .message_bytes = (int)config.max_message,
        .history_limit = HISTORY_LIMIT_MAX,
        .search_limit = SEARCH_LIMIT_MAX,
        .search_chars = SEARCH_QUERY_MAX,
        .send_rate = config.rate_limit ? config.send_rate : 0,
        .send_burst = config.rate_limit ? config.send_burst : 0,
        .recv_timeout = config.recv_timeout_ms / 1000,
    };
    size_t len;
    char *body = views_limits(&l, &len);

    req_reply(r, 200, body, len);
    free(body);
}

static void
handle_stats(struct req *r)
{
    writer_submit(job_new(r, WRITER_STATS, NULL));
}

/* GET /metrics: the whole responder's counters, every worker's, in the
 * Prometheus text format. nginx answers it to loopback only. */
static void
handle_metrics(struct req *r)
{
    size_t len;
    char *body = stats_metrics(&len);

    req_reply_as(r, 200, "text/plain; version=0.0.4; charset=utf-8", "", body,
                 len);
    free(body);
}

static const struct route {
    const char *path;
    int methods;
    int writes; /* refused from another site */
    int chat;   /* the chat's: needs the site's user (PGCHAT_AUTH) */
    void (*handler)(struct req *r);
} routes[] = {
    {"who", REQ_GET | REQ_HEAD, 0, 1, handle_who},
    {"join", REQ_GET | REQ_POST, 1, 1, handle_join},
    {"part", REQ_GET | REQ_POST, 1, 1, handle_part},
    {"send", REQ_GET | REQ_POST, 1, 1, handle_send},
    {"delete", REQ_POST, 1, 1, moderate_delete},
    {"ban", REQ_POST, 1, 1, moderate_ban},
    {"unban", REQ_POST, 1, 1, moderate_unban},
    {"recv", REQ_GET | REQ_HEAD, 0, 1, handle_recv},
    {"events", REQ_GET, 0, 1, handle_events},
    {"healthz", REQ_GET | REQ_HEAD, 0, 0, handle_healthz},
    {"stats", REQ_GET | REQ_HEAD, 0, 0, handle_stats},
    {"history", REQ_GET | REQ_HEAD, 0, 1, handle_history},
    {"search", REQ_GET | REQ_HEAD, 0, 1, handle_search},
    {"metrics", REQ_GET | REQ_HEAD, 0, 0, handle_metrics},
    {"limits", REQ_GET | REQ_HEAD, 0, 1, handle_limits},
};

static void handle(struct req *r);

/* Requests that come before the worker has read which rooms are private
 * (a worker just started: socket activation's first request) are held
 * until it has. */
int64_t
routes_due(void)
{
    return hold_due(private_known());
}

void
routes_tick(int64_t now)
{
    hold_tick(now, private_known(), handle);
}

/* Takes r: answers it at once (errors, 404, 405) or hands it on. */
static void
handle(struct req *r)
{
    const struct route *route = NULL;
    const char *user;

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (strcmp(r->path, routes[i].path) == 0)
            route = &routes[i];
    if (!route) {
        req_error(r, 404, "Not found");
        return;
    }
    if (!(route->methods & r->method)) {
        req_error(r, 405, "Method not allowed");
        return;
    }
    switch (r->body_status) {
    case 0:
        break;
    case 413:
        req_error(r, 413, "Request body too large");
        return;
    case 415:
        req_error(r, 415, "Body must be application/x-www-form-urlencoded");
        return;
    default:
        req_error(r, 400, "Incomplete request body");
        return;
    }
    if (r->bad_input) {
        req_error(r, 400, "Malformed parameters (NUL byte)");
        return;
    }
    if (route->chat && auth_user(r, &user) < 0)
        return;
    if (route->writes && cross_site(r)) {
        req_error(r, 403, "Cross-site request refused");
        return;
    }
    if (route->chat && !private_known()) {
        hold_add(r, config.db_timeout_ms);
        return;
    }
    route->handler(r);
}

void
routes_request(struct conn *c, const struct wire_in *in)
{
    handle(req_new(c, in));
}

void
routes_abort(struct conn *c)
{
    struct req *r = server_owner(c);

    if (!r)
        return;
    r->gone = 1;
    if (r->cancel)
        r->cancel(r);
}
