/* job.h -- a request for a thread that may wait on the database: the
 * writer (writer.c) or the archive (archive.c). The loop thread makes it
 * (routes.c), the thread answers it.
 */
#ifndef PGCHAT_JOB_H
#define PGCHAT_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"

enum job_kind {
    JOB_JOIN = 1,
    JOB_PART,
    JOB_WHO,
    JOB_SEND,
    JOB_STATS,
    JOB_HISTORY,
    JOB_SEARCH,
};

/* One request for the writer or the archive. The strings are borrowed
 * from req. */
struct job {
    struct req *req; /* owned until answered */
    enum job_kind kind;
    const char *room, *nick, *id, *text, *addr;
    const char *mid;   /* a send's; NULL: none */
    int64_t before;    /* a read's cursor */
    const char *query; /* a search's */
    int limit;         /* a read's page size */
    char *token;       /* owned: a new session's */
    char cookie[256];  /* the Set-Cookie line of a join or part */
    struct job *next;
};

/* Take j: answer its request with status and {"error":message}, or 200
 * with body (and j's cookie line when a join or part set one; j->cookie is
 * empty otherwise), and free j. Any thread. */
void job_error(struct job *j, int status, const char *message);
void job_reply(struct job *j, const char *body, size_t len);

#endif
