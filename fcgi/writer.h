/* writer.h -- the worker's writer thread: joins, parts, who, /stats, sends
 * stored by group commit, and the maintenance passes between batches.
 */
#ifndef PGCHAT_WRITER_H
#define PGCHAT_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"

enum writer_kind {
    WRITER_JOIN = 1,
    WRITER_PART,
    WRITER_WHO,
    WRITER_SEND,
    WRITER_STATS,
    WRITER_HISTORY,
    WRITER_SEARCH,
};

/* One request for the writer. The strings are borrowed from req. */
struct job {
    struct req *req; /* owned until answered */
    enum writer_kind kind;
    const char *room, *nick, *id, *text, *addr;
    const char *mid;   /* a send's; NULL: none */
    int64_t before;    /* a read's cursor */
    const char *query; /* a search's */
    int limit;         /* a read's page size */
    char *token;       /* owned: a new session's */
    char cookie[256];  /* the Set-Cookie line of a join or part */
    struct job *next;
};

/* Starts the thread and its database connection. Returns 0 or -1. */
int writer_start(void);

/* Takes j (allocated with xcalloc): queues it; the writer thread answers.
 * Safe from any thread. */
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
