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

/* Whether the user of r may use room: with auth off, or no room list from
 * the site, every room is allowed. Returns 0, or -1 after answering 403
 * (a room outside the list) or 502 (a list that is not rooms). */
int auth_room(struct req *r, const char *room);

/* Whether the user of r is a moderator: the site's X-Pgchat-Role says
 * "moderator" (PGCHAT_ROLE; "user" or none: not). Returns 1 or 0, or -1
 * after answering 502 for another value. With auth off nobody is. */
int auth_moderator(struct req *r);

#endif
