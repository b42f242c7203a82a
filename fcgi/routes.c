/* routes.c -- the table of endpoints and the checks every request passes
 * before it reaches the database.
 *
 * Everything that can be decided from the request alone is decided here, on
 * the server thread, so that the writer thread and the event loop only ever
 * see well-formed requests.
 */
#include "routes.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "loop.h"
#include "token.h"
#include "util.h"
#include "valid.h"
#include "views.h"
#include "writer.h"

#define DEFAULT_ROOM "lobby"

void
routes_error(struct req *r, int status, const char *message)
{
    size_t len;
    char *body = views_error(message, &len);

    req_reply(r, status, body, len);
    free(body);
}

void
routes_ok(struct req *r)
{
    size_t len;
    char *body = views_rss(rss_current(), &len);

    req_reply(r, 200, body, len);
    free(body);
}

/* Sets r->room from the request. Returns 0, or -1 after replying. */
static int
take_room(struct req *r)
{
    const char *room = req_param(r, "room");

    if (!room) {
        r->room = DEFAULT_ROOM;
        return 0;
    }
    if (!valid_room(room, strlen(room))) {
        routes_error(r, 400, "Bad room.");
        return -1;
    }
    r->room = room;
    return 0;
}

static void
handle_who(struct req *r)
{
    if (take_room(r) < 0)
        return;
    writer_submit(r, WRITER_WHO);
}

static void
handle_join(struct req *r)
{
    const char *nick = req_param(r, "nick");

    if (!nick || !valid_nick(nick, strlen(nick))) {
        routes_error(r, 400, "Bad nick.");
        return;
    }
    if (take_room(r) < 0)
        return;
    r->nick = nick;
    r->token = token_new();
    if (!r->token) {
        routes_error(r, 503, "Cannot create a session, try again");
        return;
    }
    writer_submit(r, WRITER_JOIN);
}

static void
handle_part(struct req *r)
{
    if (take_room(r) < 0)
        return;
    r->id = req_param(r, "id");
    if (!r->id || !valid_id(r->id, strlen(r->id))) {
        routes_ok(r); /* names no session: nothing to end */
        return;
    }
    writer_submit(r, WRITER_PART);
}

static void
handle_send(struct req *r)
{
    const char *text = req_param(r, "text");

    if (take_room(r) < 0)
        return;
    /* An id that cannot be a token is refused here: it must not reach
     * the database, where one malformed parameter would fail the whole
     * batch of sends it travels in. */
    r->id = req_param(r, "id");
    if (!r->id || !valid_id(r->id, strlen(r->id))) {
        routes_error(r, 400, "No such session id");
        return;
    }
    switch (valid_text(text, text ? strlen(text) : 0, config.max_message)) {
    case VALID_TEXT_EMPTY:
        routes_error(r, 400, "Empty message");
        return;
    case VALID_TEXT_TOO_LONG:
        routes_error(r, 400, "Message too long");
        return;
    case VALID_TEXT_BAD_UTF8:
        routes_error(r, 400, "Message is not valid UTF-8");
        return;
    case VALID_TEXT_CONTROL:
        routes_error(r, 400, "Message has control characters");
        return;
    case VALID_TEXT_OK:
        break;
    }
    r->text = text;
    writer_submit(r, WRITER_SEND);
}

static void
handle_recv(struct req *r)
{
    if (valid_since(req_param(r, "since"), &r->since) < 0) {
        routes_error(r, 400, "Must supply since parameter");
        return;
    }
    if (take_room(r) < 0)
        return;
    /* Reading needs no session; an id is only used as a keep-alive. */
    r->id = req_param(r, "id");
    if (r->id && !valid_id(r->id, strlen(r->id)))
        r->id = NULL;
    loop_submit(r);
}

static void
handle_healthz(struct req *r)
{
    writer_submit(r, WRITER_HEALTH);
}

static void
handle_stats(struct req *r)
{
    writer_submit(r, WRITER_STATS);
}

static const struct route {
    const char *path;
    int methods;
    void (*handler)(struct req *r);
} routes[] = {
    {"who", REQ_GET | REQ_HEAD, handle_who},
    {"join", REQ_GET | REQ_POST, handle_join},
    {"part", REQ_GET | REQ_POST, handle_part},
    {"send", REQ_GET | REQ_POST, handle_send},
    {"recv", REQ_GET | REQ_HEAD, handle_recv},
    {"healthz", REQ_GET | REQ_HEAD, handle_healthz},
    {"stats", REQ_GET | REQ_HEAD, handle_stats},
};

void
routes_handle(struct req *r)
{
    const struct route *route = NULL;

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (strcmp(r->path, routes[i].path) == 0)
            route = &routes[i];
    if (!route) {
        routes_error(r, 404, "Not found");
        return;
    }
    if (!(route->methods & r->method)) {
        routes_error(r, 405, "Method not allowed");
        return;
    }
    switch (r->body_status) {
    case 0:
        break;
    case 413:
        routes_error(r, 413, "Request body too large");
        return;
    case 415:
        routes_error(r, 415, "Body must be application/x-www-form-urlencoded");
        return;
    default:
        routes_error(r, 400, "Incomplete request body");
        return;
    }
    if (r->bad_input) {
        routes_error(r, 400, "Malformed parameters (NUL byte)");
        return;
    }
    route->handler(r);
}
