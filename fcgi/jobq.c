/* jobq.c -- a thread that answers jobs other threads queue for it.
 *
 * The queue is a list under a mutex; the thread waits on a condition
 * variable on CLOCK_MONOTONIC, so a change of the wall clock never makes
 * it wait too long or spin.
 */
#define _GNU_SOURCE
#include "jobq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

struct jobq {
    pthread_t thread;
    pthread_mutex_t mu; /* guards everything below but done */
    pthread_cond_t cond;
    const struct jobq_ops *ops;
    void *arg;
    char name[16]; /* pthread_setname_np's limit */
    struct job *head, *tail;
    size_t n, max;
    int stopping, full;
    _Atomic int done; /* the thread has finished */
};

int
jobq_submit(struct jobq *q, struct job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&q->mu);
    q->full = q->max && q->n >= q->max;
    if (q->stopping || q->full) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    /* The thread waits only on an empty queue, and takes all of it at
     * once: only the first job of a batch needs to wake it. */
    if (!q->head)
        pthread_cond_signal(&q->cond);
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
    pthread_mutex_unlock(&q->mu);
    return 0;
}

int
jobq_full(struct jobq *q)
{
    int full;

    pthread_mutex_lock(&q->mu);
    full = q->full;
    pthread_mutex_unlock(&q->mu);
    return full;
}

static void
deadline(struct timespec *ts, int64_t due)
{
    int64_t ms = due - mono_ms();

    clock_gettime(CLOCK_MONOTONIC, ts);
    if (ms < 0)
        ms = 0;
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* Waits for jobs, for stopping, or until ops->due(). Returns the queue,
 * taken whole, or NULL. */
static struct job *
take(struct jobq *q)
{
    struct job *list;

    pthread_mutex_lock(&q->mu);
    while (!q->head && !q->stopping) {
        int64_t due = q->ops->due(q->arg);
        struct timespec ts;

        if (due <= mono_ms())
            break;
        deadline(&ts, due);
        if (pthread_cond_timedwait(&q->cond, &q->mu, &ts) != 0)
            break;
    }
    list = q->head;
    q->head = q->tail = NULL;
    q->n = 0;
    pthread_mutex_unlock(&q->mu);
    return list;
}

static void *
jobq_main(void *arg)
{
    struct jobq *q = arg;

    for (;;) {
        struct job *list = take(q);
        int idle = !list, stopping;

        if (list)
            q->ops->run(q->arg, list);
        pthread_mutex_lock(&q->mu);
        stopping = q->stopping && !q->head;
        pthread_mutex_unlock(&q->mu);
        /* What was queued before stopping is still answered; then the
         * last tick. */
        if (q->ops->tick)
            q->ops->tick(q->arg, idle, stopping);
        if (stopping)
            break;
    }
    q->done = 1;
    return NULL;
}

struct jobq *
jobq_start(const char *name, const struct jobq_ops *ops, void *arg, size_t max)
{
    struct jobq *q = xcalloc(1, sizeof(*q));
    pthread_condattr_t attr;

    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &attr);
    pthread_condattr_destroy(&attr);
    q->ops = ops;
    q->arg = arg;
    q->max = max;
    snprintf(q->name, sizeof(q->name), "%s", name);
    if (pthread_create(&q->thread, NULL, jobq_main, q) != 0) {
        log_error("cannot start the %s thread", name);
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->mu);
        free(q);
        return NULL;
    }
    pthread_setname_np(q->thread, q->name);
    return q;
}

void
jobq_stop(struct jobq *q)
{
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->mu);
}

int
jobq_done(struct jobq *q)
{
    return q->done;
}

void
jobq_free(struct jobq *q)
{
    if (!q)
        return;
    pthread_join(q->thread, NULL);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
