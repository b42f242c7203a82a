/* writer.h -- the worker's writer thread: joins, parts, who, /stats, sends
 * stored by group commit, and the maintenance passes between batches.
 */
#ifndef PGCHAT_WRITER_H
#define PGCHAT_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "job.h"

/* What the writer does for a job (struct job's kind). */
enum writer_job {
    WRITER_JOIN = 1,
    WRITER_PART,
    WRITER_WHO,
    WRITER_SEND,
    WRITER_STATS,
    WRITER_DELETE, /* a moderator's: j->before is the message's ts */
    WRITER_BAN,    /* a moderator's: j->login is banned from j->room */
    WRITER_UNBAN,  /* ... and no more */
};

/* Starts the thread and its database connection. Returns 0 or -1. */
int writer_start(void);

/* Takes j (from job_new(), a writer_job kind): queues it; the writer
 * thread answers. Safe from any thread. */
void writer_submit(struct job *j);

/* Takes ids and each string: the sessions are marked active with the next
 * batch. Safe from any thread. */
void writer_touch(char **ids, size_t n);

/* Tells the thread to finish what is queued (touches included) and stop;
 * writer_done() says when it has, writer_join() then frees it. */
void writer_stop(void);
int writer_done(void);
void writer_join(void);

#endif
