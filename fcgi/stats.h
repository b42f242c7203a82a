/* stats.h -- the worker's counters for /stats: bumped from any thread,
 * read by whoever answers.
 */
#ifndef PGCHAT_STATS_H
#define PGCHAT_STATS_H

struct stats {
    _Atomic long long connections; /* FastCGI connections accepted */
    _Atomic long long requests;    /* FastCGI requests read */
    _Atomic long long parked;      /* /recv requests waiting now */
    _Atomic long long db_timeouts; /* database calls given up */
    _Atomic long long db_reconnects;
};

extern struct stats stats;

/* Adds n (which may be negative) to the counter c. Safe from any thread. */
static inline void
stats_add(_Atomic long long *c, long long n)
{
    *c += n;
}

#endif
