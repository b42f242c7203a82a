/* jobq.h -- a thread that answers jobs other threads queue for it: the
 * writer (writer.c) and the archive (archive.c) each run one.
 *
 * The thread takes everything queued at once and hands it to its run
 * callback, so that what is queued while one batch runs gathers into the
 * next by itself (the writer's group commit rests on this). Between
 * batches, and when its deadline passes with nothing queued, it calls
 * tick: the writer's maintenance passes, the archive's idle close.
 */
#ifndef PGCHAT_JOBQ_H
#define PGCHAT_JOBQ_H

#include <stddef.h>
#include <stdint.h>

#include "job.h"

struct jobq_ops {
    /* Each gets the arg given to jobq_start(), on the queue's thread. */
    /* Takes list (linked through next, oldest first): answers every job. */
    void (*run)(void *arg, struct job *list);
    /* The mono_ms() by which tick must run even if nothing is queued. */
    int64_t (*due)(void *arg);
    /* After each batch (idle 0) or a wait that ended with nothing queued
     * (idle 1); stopping is set on the last call. May be NULL. */
    void (*tick)(void *arg, int idle, int stopping);
};

struct jobq;

/* Returns a running thread called name (for ps and gdb), borrowing ops and
 * arg, that holds at most max jobs queued (0: no bound); NULL when the
 * thread cannot start (logged). Free with jobq_free(). */
struct jobq *jobq_start(const char *name, const struct jobq_ops *ops, void *arg,
                        size_t max);

/* Queues j for the thread and takes it. Returns 0, or -1 without taking j
 * when the queue is stopping or full (jobq_full() tells which). Any
 * thread. */
int jobq_submit(struct jobq *q, struct job *j);
int jobq_full(struct jobq *q);

/* Tells the thread to answer what is queued and stop; jobq_done() says
 * when it has. */
void jobq_stop(struct jobq *q);
int jobq_done(struct jobq *q);

/* Joins the thread and frees q; q may be NULL. */
void jobq_free(struct jobq *q);

#endif
