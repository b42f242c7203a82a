/* hold.c -- requests that came before the worker could serve them, held
 * on the loop until it can, for a bounded time.
 *
 * Oldest first, in an array: they are few and held for moments (a worker
 * that has just started), and one that waits too long is answered.
 */
#include "hold.h"

#include <string.h>

#include "util.h"

#define HOLD_MAX 1024

static struct {
    struct req *r[HOLD_MAX];
    int64_t until[HOLD_MAX];
    size_t n;
} held;

static void
unhold(struct req *r)
{
    for (size_t i = 0; i < held.n; i++)
        if (held.r[i] == r) {
            held.n--;
            memmove(&held.r[i], &held.r[i + 1], (held.n - i) * sizeof(r));
            memmove(&held.until[i], &held.until[i + 1],
                    (held.n - i) * sizeof(*held.until));
            break;
        }
    r->cancel = NULL;
}

/* The client left while its request was held. */
static void
cancel(struct req *r)
{
    unhold(r);
    req_drop(r);
}

void
hold_add(struct req *r, int timeout_ms)
{
    int64_t until = mono_ms() + timeout_ms;

    /* In order of until: every caller holds for the same time. */
    if (held.n == HOLD_MAX) {
        req_error_retry(r, 503, REQ_DB_DOWN, 1);
        return;
    }
    held.r[held.n] = r;
    held.until[held.n++] = until;
    r->cancel = cancel;
}

int64_t
hold_due(int ready)
{
    if (!held.n)
        return INT64_MAX;
    return ready ? 0 : held.until[0];
}

void
hold_tick(int64_t now, int ready, void (*again)(struct req *r))
{
    while (held.n && (ready || now >= held.until[0])) {
        struct req *r = held.r[0];

        unhold(r);
        if (ready)
            again(r);
        else
            req_error_retry(r, 503, REQ_DB_DOWN, 1);
    }
}
