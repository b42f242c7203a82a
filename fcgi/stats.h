/* stats.h -- counters: the worker's own for /stats, and the whole
 * responder's for /metrics, in memory every worker shares.
 *
 * The shared block is mapped by the parent before it forks (stats_map()),
 * so each worker's additions land in the one block; its fields are atomics,
 * bumped from any thread of any worker without a lock.
 */
#ifndef PGCHAT_STATS_H
#define PGCHAT_STATS_H

#include <stddef.h>
#include <stdint.h>

struct stats {
    _Atomic long long connections; /* FastCGI connections accepted */
    _Atomic long long requests;    /* FastCGI requests read */
    _Atomic long long parked;      /* /recv and /events waiting now */
};

extern struct stats stats;

#define STATS_ENDPOINTS 16 /* the routes, and "other" for the rest */
#define STATS_CODES 14     /* the statuses we answer, and "other" */
#define STATS_BATCH_BUCKETS 9
#define STATS_FANOUT_BUCKETS 12

struct stats_hist {
    _Atomic long long bucket[STATS_FANOUT_BUCKETS + 1]; /* not cumulative */
    _Atomic long long count;
    _Atomic long long sum; /* in the unit the histogram counts in */
};

/* The whole responder's, for /metrics. */
/* NEEDSWORK: a worker that crashes leaves its parked requests counted in
 * parked; per-worker slots, zeroed by the parent when it replaces one,
 * would not. */
struct stats_all {
    _Atomic long long parked; /* /recv and /events waiting, every worker */
    _Atomic long long requests[STATS_ENDPOINTS][STATS_CODES];
    _Atomic long long messages_stored;
    _Atomic long long db_reconnects;
    _Atomic long long db_timeouts;
    _Atomic long long room_queries;    /* chat_recv calls of the loops */
    _Atomic long long notify_batches;  /* NOTIFYs that carried their batch */
    _Atomic long long notify_appended; /* ... appended without a query */
    struct stats_hist batch;           /* sends per transaction */
    struct stats_hist fanout;          /* microseconds, NOTIFY to the replies */
};

/* Never NULL: a private block until stats_map() replaces it. */
extern struct stats_all *stats_all;

/* Maps the shared block; call once, before the workers are forked.
 * Returns 0 or -1. */
int stats_map(void);

/* Adds n (which may be negative) to the counter c. Safe from any thread. */
static inline void
stats_add(_Atomic long long *c, long long n)
{
    *c += n;
}

/* Counts a reply of status to the endpoint path (NULL: none). */
void stats_request(const char *path, int status);

/* Counts a transaction of n sends. */
void stats_batch(long long n);

/* Monotonic microseconds, for stats_fanout(). */
int64_t stats_now_us(void);

/* Counts a fan-out that took us microseconds. */
void stats_fanout(int64_t us);

/* Returns the block in the Prometheus text format 0.0.4, which the caller
 * frees; *len gets its length. */
char *stats_metrics(size_t *len);

#endif
