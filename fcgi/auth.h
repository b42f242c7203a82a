/* auth.h -- who a request is from when your site's login says so
 * (PGCHAT_AUTH=request): nginx asks the site (auth_request) and passes its
 * answer as the FastCGI parameters PGCHAT_USER and PGCHAT_ROOMS, never
 * anything the client sent.
 */
#ifndef PGCHAT_AUTH_H
#define PGCHAT_AUTH_H

#include "request.h"

/* Whether r must carry a user: PGCHAT_AUTH=request in the responder's
 * environment, or in the parameters nginx sends (so that an nginx that
 * asks the site cannot be paired with a responder that would ignore the
 * answer). */
int auth_required(const struct req *r);

/* The user nginx's auth request named for r, or NULL when auth is off.
 * Returns 0 with *user set (borrowed from r), or -1 after answering 401
 * (no user) or 502 (a name that is not a nick). */
int auth_user(struct req *r, const char **user);

#define AUTH_NOT_YOURS "Not one of your rooms"

/* Whether the user of r may use room: 1 or 0, or -1 when the site's list
 * is not rooms. A private room (private.h) only when the site's list names
 * it; any other room with auth off, with no list from the site, or with
 * "*" in it, else only when the list names it. */
int auth_may_use(const struct req *r, const char *room);

/* Sets *room (borrowed from r) from the request's room parameter (none:
 * "lobby"), a room the user of r may use. Returns 0, or -1 after answering
 * 400 (not a room name), 403 (not its room) or 502 (the site's list is
 * not rooms). The worker must know which rooms are private (routes.c holds
 * requests until it does). */
int auth_take_room(struct req *r, const char **room);

/* Whether the user of r is a moderator: the site's X-Pgchat-Role says
 * "moderator" (PGCHAT_ROLE; "user" or none: not). Returns 1 or 0, or -1
 * after answering 502 for another value. With auth off nobody is. */
int auth_moderator(struct req *r);

#endif
