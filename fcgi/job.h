/* job.h -- a request for a thread that may wait on the database: the
 * writer (writer.h) or the archive (archive.h), each with job kinds of its
 * own. The loop thread makes it (routes.c); the thread answers it.
 */
#ifndef PGCHAT_JOB_H
#define PGCHAT_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"

/* One request for the writer or the archive. The strings are borrowed
 * from req. */
struct job {
    struct req *req; /* owned until answered */
    int kind;        /* the owning thread's: enum writer_job, archive_job */
    const char *room, *nick, *id, *text, *addr;
    const char *login; /* the site's user (auth.h) of a join, send or part;
                        * a ban's banned user; NULL: none */
    const char *mid;   /* a send's; NULL: none */
    int64_t before;    /* a read's cursor */
    const char *query; /* a search's */
    int limit;         /* a read's page size; a ban's minutes (0: no end) */
    int moderator;     /* the site says the user moderates (auth.h) */
    char *token;       /* owned: a new session's */
    char cookie[256];  /* the Set-Cookie line a join or part answers with */
    char client[48];   /* the client's address, copied: the archive counts
                        * each address's reads */
    struct job *next;
};

/* Returns a job of kind for r (taken) in room, for the caller to submit. */
struct job *job_new(struct req *r, int kind, const char *room);

/* Take j: answer its request with status and {"error":message}, or 200
 * with body (and j's cookie line when it has one), and free j. With
 * job_error_retry, the error says when to ask again (Retry-After, in
 * seconds). Any thread. */
void job_error(struct job *j, int status, const char *message);
void job_error_retry(struct job *j, int status, const char *message,
                     int retry_s);
void job_reply(struct job *j, const char *body, size_t len);

#endif
