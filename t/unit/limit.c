/* limit.c -- unit tests for the per-session token buckets. */
#include "limit.h"
#include "tap.h"

int
main(void)
{
    struct limiter *l = limiter_new(5, 3); /* 5 a second, bursts of 3 */
    int allowed = 0;

    for (int i = 0; i < 10; i++)
        allowed += limiter_take(l, "alice", 1000);
    is_int(allowed, 3, "a burst of 3 is allowed at once, no more");
    ok(limiter_take(l, "bob", 1000), "other keys have their own bucket");
    ok(!limiter_take(l, "alice", 1100), "a token takes 200 ms to come back");
    ok(limiter_take(l, "alice", 1200), "and is there after 200 ms");
    allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += limiter_take(l, "alice", 60000);
    is_int(allowed, 3, "a long pause refills only up to the burst");
    is_int(limiter_prune(l, 60000), 1,
           "pruning forgets full buckets (bob), keeps used ones (alice)");
    is_int(limiter_prune(l, 61000), 0, "and alice once hers is full again");
    ok(limiter_take(l, "alice", 61000), "a forgotten key starts full");
    limiter_free(l);
    {
        struct limiter *none = NULL;

        limiter_free(none); /* a NULL dereference is a sanitizer report */
        ok(none == NULL, "limiter_free accepts NULL");
    }
    return done_testing();
}
