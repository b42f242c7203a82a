/* auth.c -- the user and rooms your site's login gave a request
 * (PGCHAT_AUTH=request).
 *
 * nginx's auth_request asks the site about the request's cookie and copies
 * the answer's X-Pgchat-User and X-Pgchat-Rooms into the parameters
 * PGCHAT_USER and PGCHAT_ROOMS. A client's own X-Pgchat-User header
 * arrives as HTTP_X_PGCHAT_USER, which nothing here reads. A private room
 * (private.h) is only for a user whose list names it. A value the
 * site got wrong is the site's error, not the client's: 502, with a
 * message that names the header, so the operator finds it at once.
 */
#include "auth.h"

#include <string.h>

#include "config.h"
#include "private.h"
#include "valid.h"

int
auth_required(const struct req *r)
{
    const char *mode = req_env(r, "PGCHAT_AUTH");

    return config.auth || (mode && strcmp(mode, "request") == 0);
}

int
auth_user(struct req *r, const char **user)
{
    const char *v;

    *user = NULL;
    if (!auth_required(r))
        return 0;
    v = req_env(r, "PGCHAT_USER");
    if (!v || !*v) {
        req_error(r, 401, "Login required");
        return -1;
    }
    if (!valid_nick(v, strlen(v))) {
        req_error(r, 502,
                  "Bad X-Pgchat-User from the login service "
                  "(1-50 letters, digits, _ - ^ !)");
        return -1;
    }
    *user = v;
    return 0;
}

int
auth_moderator(struct req *r)
{
    const char *role = req_env(r, "PGCHAT_ROLE");

    if (!auth_required(r) || !role || !*role || strcmp(role, "user") == 0)
        return 0;
    if (strcmp(role, "moderator") == 0)
        return 1;
    req_error(r, 502,
              "Bad X-Pgchat-Role from the login service "
              "(moderator or user)");
    return -1;
}

/* Rooms are separated by commas or spaces. */
#define ROOM_SEP ", "

int
auth_may_use(const struct req *r, const char *room)
{
    const char *list = req_env(r, "PGCHAT_ROOMS"), *p;
    size_t want = strlen(room);
    int every, named = 0;

    if (!auth_required(r))
        return !private_is(room);
    /* No list, an empty one, or "*" among them: every public room. */
    p = list ? list + strspn(list, ROOM_SEP) : "";
    every = !*p;
    /* The whole list is checked, not only up to a match: a list with a
     * bad name in it is wrong wherever the name is. */
    while (*p) {
        size_t len = strcspn(p, ROOM_SEP);

        if (len == 1 && *p == '*')
            every = 1;
        else if (!valid_room(p, len))
            return -1;
        else
            named |= len == want && memcmp(p, room, len) == 0;
        p += len;
        p += strspn(p, ROOM_SEP);
    }
    return named || (every && !private_is(room));
}

/* auth_may_use() for a request about to be served. Returns 0, or -1 after
 * answering. */
static int
may_use(struct req *r, const char *room)
{
    switch (auth_may_use(r, room)) {
    case 1:
        return 0;
    case 0:
        req_error(r, 403, AUTH_NOT_YOURS);
        return -1;
    default:
        req_error(r, 502,
                  "Bad X-Pgchat-Rooms from the login service "
                  "(room names or *, comma-separated)");
        return -1;
    }
}

#define DEFAULT_ROOM "lobby"

int
auth_take_room(struct req *r, const char **room)
{
    const char *v = req_param(r, "room");

    if (!v) {
        *room = DEFAULT_ROOM;
        return may_use(r, *room);
    }
    if (!valid_room(v, strlen(v))) {
        req_error(r, 400, "Bad room.");
        return -1;
    }
    *room = v;
    return may_use(r, *room);
}
