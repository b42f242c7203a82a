/* job.c -- a request for a thread that may wait on the database. */
#include "job.h"

#include <stdlib.h>

void
job_error(struct job *j, int status, const char *message)
{
    req_error(j->req, status, message);
    free(j->token);
    free(j);
}

void
job_reply(struct job *j, const char *body, size_t len)
{
    req_reply_with(j->req, 200, j->cookie, body, len);
    free(j->token);
    free(j);
}
