/* hold.h -- requests that came before the worker could serve them, held
 * on the loop until it can, for a bounded time.
 */
#ifndef PGCHAT_HOLD_H
#define PGCHAT_HOLD_H

#include <stdint.h>

#include "request.h"

/* Takes r: held until hold_tick() finds the worker ready, or answered 503
 * with Retry-After after timeout_ms (at once when too many are held). A
 * client that leaves meanwhile is dropped. */
void hold_add(struct req *r, int timeout_ms);

/* The next mono_ms() at which hold_tick() has work, given whether the
 * worker is ready now. */
int64_t hold_due(int ready);

/* Passes the held requests to again() if ready, else answers those whose
 * time is up. */
void hold_tick(int64_t now, int ready, void (*again)(struct req *r));

#endif
