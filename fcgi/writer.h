/* writer.h -- the worker's writer thread: joins, parts, who, and sends
 * stored by group commit.
 */
#ifndef PGCHAT_WRITER_H
#define PGCHAT_WRITER_H

#include "request.h"

enum writer_job {
    WRITER_JOIN = 1,
    WRITER_PART,
    WRITER_WHO,
    WRITER_SEND,
    WRITER_HEALTH,
    WRITER_STATS,
};

/* Starts the thread and its database connection. Returns 0 or -1. */
int writer_start(void);

/* Takes r: queues it; the writer thread replies. */
void writer_submit(struct req *r, enum writer_job job);

/* Finishes what is queued, then stops the thread. */
void writer_stop(void);

#endif
