/* limit.c -- token buckets, one per key (a session), for rate limits.
 *
 * A bucket holds up to burst tokens and refills at rate tokens a second;
 * each event takes one. A key whose bucket would be full again carries no
 * information, so pruning drops it: memory is bounded by the keys active in
 * the last burst/rate seconds.
 */
#include "limit.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define LIMIT_BUCKETS 4096

struct bucket {
    char *key;
    double tokens;
    int64_t at; /* ms of the last refill */
    struct bucket *next;
};

struct limiter {
    double rate, burst;
    unsigned count;
    struct bucket *table[LIMIT_BUCKETS];
};

struct limiter *
limiter_new(double rate, double burst)
{
    struct limiter *l = xcalloc(1, sizeof(*l));

    l->rate = rate;
    l->burst = burst < 1 ? 1 : burst;
    return l;
}

void
limiter_free(struct limiter *l)
{
    if (!l)
        return;
    for (unsigned h = 0; h < LIMIT_BUCKETS; h++) {
        struct bucket *b = l->table[h];

        while (b) {
            struct bucket *next = b->next;

            free(b->key);
            free(b);
            b = next;
        }
    }
    free(l);
}

static unsigned
hash(const char *s)
{
    unsigned h = 2166136261u;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % LIMIT_BUCKETS;
}

static void
refill(const struct limiter *l, struct bucket *b, int64_t now_ms)
{
    if (now_ms > b->at) {
        b->tokens += (double)(now_ms - b->at) * l->rate / 1000.0;
        if (b->tokens > l->burst)
            b->tokens = l->burst;
        b->at = now_ms;
    }
}

int
limiter_take(struct limiter *l, const char *key, int64_t now_ms)
{
    unsigned h = hash(key);
    struct bucket *b;

    for (b = l->table[h]; b; b = b->next)
        if (strcmp(b->key, key) == 0)
            break;
    if (!b) {
        b = xcalloc(1, sizeof(*b));
        b->key = xstrdup(key);
        b->tokens = l->burst;
        b->at = now_ms;
        b->next = l->table[h];
        l->table[h] = b;
        l->count++;
    }
    refill(l, b, now_ms);
    if (b->tokens < 1)
        return 0;
    b->tokens -= 1;
    return 1;
}

unsigned
limiter_prune(struct limiter *l, int64_t now_ms)
{
    for (unsigned h = 0; h < LIMIT_BUCKETS; h++) {
        struct bucket **pp = &l->table[h];

        while (*pp) {
            struct bucket *b = *pp;

            refill(l, b, now_ms);
            if (b->tokens >= l->burst) {
                *pp = b->next;
                free(b->key);
                free(b);
                l->count--;
            } else {
                pp = &b->next;
            }
        }
    }
    return l->count;
}
