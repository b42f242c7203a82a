/* routes.h -- the table of endpoints and the checks every request passes
 * before it reaches the database; the only place that writes error bodies.
 */
#ifndef PGCHAT_ROUTES_H
#define PGCHAT_ROUTES_H

#include <stddef.h>

#include "request.h"

/* Takes r: replies at once (errors, 404, 405) or hands r to the writer
 * thread or the event loop, which reply later. Called by the server thread. */
void routes_handle(struct req *r);

/* Takes r: replies {"error":message} with status. */
void routes_error(struct req *r, int status, const char *message);

/* Takes r: replies {"rss":N}. */
void routes_ok(struct req *r);

/* The reply for a database that cannot be reached. */
#define ROUTES_DB_DOWN "Database unavailable, try again"

#endif
