/* limit.h -- token buckets, one per key (a session), for rate limits.
 *
 * Not thread-safe: one thread owns a limiter.
 */
#ifndef PGCHAT_LIMIT_H
#define PGCHAT_LIMIT_H

#include <stdint.h>

struct limiter;

/* Returns a limiter allowing rate events per second per key, with bursts of
 * up to burst events; free it with limiter_free(). */
struct limiter *limiter_new(double rate, double burst);
void limiter_free(struct limiter *l);

/* Takes one event for key at now_ms. Returns 1 when allowed, 0 when the
 * key's bucket is empty. Copies key. */
int limiter_take(struct limiter *l, const char *key, int64_t now_ms);

/* Forgets keys whose buckets have been full for a while, so that memory
 * follows the active keys. Returns how many keys remain. */
unsigned limiter_prune(struct limiter *l, int64_t now_ms);

#endif
