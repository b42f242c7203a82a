/* routes.h -- the table of endpoints and the checks every request passes
 * before it reaches the event loop or the writer.
 */
#ifndef PGCHAT_ROUTES_H
#define PGCHAT_ROUTES_H

#include <stdint.h>

#include "server.h"

/* The server's callbacks (server.h): a whole request came on c, and c's
 * busy request was aborted. Loop thread. */
void routes_request(struct conn *c, const struct wire_in *in);
void routes_abort(struct conn *c);

/* The next mono_ms() at which routes_tick() has work: requests held until
 * the worker knows which rooms are private (private.h). */
int64_t routes_due(void);
void routes_tick(int64_t now);

#endif
