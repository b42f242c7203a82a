/* job.c -- a request for a thread that may wait on the database. */
#include "job.h"

#include <stdlib.h>

#include "util.h"

struct job *
job_new(struct req *r, int kind, const char *room)
{
    struct job *j = xcalloc(1, sizeof(*j));

    j->req = r;
    j->kind = kind;
    j->room = room;
    return j;
}

static void
job_free(struct job *j)
{
    free(j->token);
    free(j);
}

void
job_error(struct job *j, int status, const char *message)
{
    req_error(j->req, status, message);
    job_free(j);
}

void
job_error_retry(struct job *j, int status, const char *message, int retry_s)
{
    req_error_retry(j->req, status, message, retry_s);
    job_free(j);
}

void
job_reply(struct job *j, const char *body, size_t len)
{
    req_reply_with(j->req, 200, j->cookie, body, len);
    job_free(j);
}
