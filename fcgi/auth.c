/* auth.c -- the user and rooms your site's login gave a request
 * (PGCHAT_AUTH=request).
 *
 * nginx's auth_request asks the site about the request's cookie and copies
 * the answer's X-Pgchat-User and X-Pgchat-Rooms into the parameters
 * PGCHAT_USER and PGCHAT_ROOMS. A client's own X-Pgchat-User header
 * arrives as HTTP_X_PGCHAT_USER, which nothing here reads. A value the
 * site got wrong is the site's error, not the client's: 502, with a
 * message that names the header, so the operator finds it at once.
 */
#include "auth.h"

#include <string.h>

#include "config.h"
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
auth_room(struct req *r, const char *room)
{
    const char *list = req_env(r, "PGCHAT_ROOMS"), *p;
    size_t want = strlen(room);
    int found = 0;

    if (!auth_required(r) || !list || !list[strspn(list, ROOM_SEP)])
        return 0;
    /* The whole list is checked, not only up to a match: a list with a
     * bad name in it is wrong wherever the name is. */
    for (p = list + strspn(list, ROOM_SEP); *p;) {
        size_t len = strcspn(p, ROOM_SEP);

        if (!valid_room(p, len)) {
            req_error(r, 502,
                      "Bad X-Pgchat-Rooms from the login service "
                      "(room names, comma-separated)");
            return -1;
        }
        found |= len == want && memcmp(p, room, len) == 0;
        p += len;
        p += strspn(p, ROOM_SEP);
    }
    if (!found) {
        req_error(r, 403, "Not one of your rooms");
        return -1;
    }
    return 0;
}
