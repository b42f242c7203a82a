/* maint.c -- the maintenance passes, run by the writer thread between its
 * batches, never by the event loop.
 *
 * Keep-alives are this worker's own: the sessions its readers and senders
 * used. The sweep and retention are the database's: whichever runner on
 * it takes the advisory lock first does a pass, the others skip it
 * (migrations: chat_sweep_once, chat_expire_once), so one runs at a time
 * across every worker and responder. Each pass is one short transaction
 * that waits at most a second for a writer's row lock.
 */
#include "maint.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "store.h"
#include "util.h"

#define MAINT_EXPIRE_MS 60000 /* retention runs this often */
#define MAINT_TOUCH_MS 5000   /* keep-alives wait at most this long */

static struct {
    pthread_mutex_t mu; /* guards touches */
    char **touches;
    size_t n, cap;
    int64_t next_sweep, next_expire, next_touch;
    int touch_ms;     /* well within the session timeout */
    char runner[300]; /* host:pid, in maintenance_runs */
} maint = {.mu = PTHREAD_MUTEX_INITIALIZER};

void
maint_init(void)
{
    char host[256] = "";
    int64_t now = mono_ms();

    gethostname(host, sizeof(host) - 1);
    snprintf(maint.runner, sizeof(maint.runner), "%s:%d", host, (int)getpid());
    /* Jitter spreads the workers' passes apart. */
    maint.next_sweep = now + rand() % (config.sweep_interval_ms + 1);
    maint.next_expire = now + rand() % (config.sweep_interval_ms + 1);
    maint.touch_ms = config.session_timeout_s * 1000 / 4;
    if (maint.touch_ms > MAINT_TOUCH_MS)
        maint.touch_ms = MAINT_TOUCH_MS;
    maint.next_touch = now + maint.touch_ms;
}

void
maint_touch(char **ids, size_t n)
{
    pthread_mutex_lock(&maint.mu);
    if (maint.n + n > maint.cap) {
        while (maint.n + n > maint.cap)
            maint.cap = maint.cap ? 2 * maint.cap : 64;
        maint.touches =
            xrealloc(maint.touches, maint.cap * sizeof(*maint.touches));
    }
    for (size_t i = 0; i < n; i++)
        maint.touches[maint.n++] = ids[i];
    pthread_mutex_unlock(&maint.mu);
    free(ids);
}

int64_t
maint_due(void)
{
    int64_t due = maint.next_sweep;

    if (config.retention_days && maint.next_expire < due)
        due = maint.next_expire;
    if (maint.next_touch < due)
        due = maint.next_touch;
    return due;
}

static int
by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Frees the repeats in v[0..n) (a sender's id comes with every send):
 * returns how many distinct ids are left at its start. */
static size_t
unique(char **v, size_t n)
{
    size_t k = 0;

    qsort(v, n, sizeof(*v), by_string);
    for (size_t i = 0; i < n; i++) {
        if (k && strcmp(v[k - 1], v[i]) == 0)
            free(v[i]);
        else
            v[k++] = v[i];
    }
    return k;
}

static void
touch(struct pg *p)
{
    char **v;
    size_t n;

    pthread_mutex_lock(&maint.mu);
    v = maint.touches;
    n = maint.n;
    maint.touches = NULL;
    maint.n = maint.cap = 0;
    pthread_mutex_unlock(&maint.mu);
    /* A failed keep-alive is not retried: the next one comes within
     * seconds, long before the session could expire. */
    n = n ? unique(v, n) : 0;
    if (n)
        store_touch(p, (const char *const *)v, n);
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void
sweep(struct pg *p)
{
    long long n = store_sweep(p, config.session_timeout_s, maint.runner);

    if (n > 0)
        log_info("ended %lld idle session%s", n, n == 1 ? "" : "s");
}

static void
expire(struct pg *p)
{
    long long n = store_expire(p, config.retention_days, maint.runner);

    if (n > 0)
        log_info("deleted %lld message%s older than %d days", n,
                 n == 1 ? "" : "s", config.retention_days);
}

void
maint_run(struct pg *p, int64_t now, int all)
{
    if (all || now >= maint.next_touch) {
        touch(p);
        maint.next_touch = now + maint.touch_ms;
    }
    if (all)
        return;
    if (now >= maint.next_sweep) {
        sweep(p);
        maint.next_sweep = now + config.sweep_interval_ms +
                           rand() % (config.sweep_interval_ms / 4 + 1);
    }
    if (config.retention_days && now >= maint.next_expire) {
        expire(p);
        maint.next_expire = now + MAINT_EXPIRE_MS;
    }
}
