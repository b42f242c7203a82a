/* archive.h -- the worker's archive thread: /history and /search on a
 * connection of their own, so that no read holds up a send.
 */
#ifndef PGCHAT_ARCHIVE_H
#define PGCHAT_ARCHIVE_H

#include "job.h"

/* What the archive does for a job (struct job's kind). */
enum archive_job {
    ARCHIVE_HISTORY = 1,
    ARCHIVE_SEARCH,
};

/* Starts the thread; its connection opens with the first read. Returns 0
 * or -1. */
int archive_start(void);

/* Takes j (from job_new(), an archive_job kind): queues it; the archive
 * thread answers. A full queue answers 503 at once. Safe from any
 * thread. */
void archive_submit(struct job *j);

/* Tells the thread to answer what is queued and stop; archive_done() says
 * when it has, archive_join() then frees it. */
void archive_stop(void);
int archive_done(void);
void archive_join(void);

#endif
