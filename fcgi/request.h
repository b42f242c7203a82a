/* request.h -- one FastCGI request: its parameters, bounded body, decoded
 * query and form, and the reply that finishes it.
 *
 * A struct req moves between threads: the server thread makes it, and then
 * exactly one thread (the same one, the writer or the event loop) replies
 * or drops it, which frees it and passes its connection on.
 */
#ifndef PGCHAT_REQUEST_H
#define PGCHAT_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"
#include "query.h"

/* Bodies above this are refused with 413; nginx's client_max_body_size is
 * the same, so the cap only matters when nginx is configured otherwise. */
#define REQ_MAX_BODY (64 * 1024)

enum req_method { REQ_GET = 1, REQ_HEAD = 2, REQ_POST = 4, REQ_OTHER = 8 };

struct room;
struct conn;

struct req {
    struct conn *conn; /* owned until the reply */
    struct wire_params params;
    enum req_method method;
    const char *path;   /* borrowed from params: the endpoint's name */
    struct query query; /* the query string */
    struct query form;  /* the body of a form POST */
    int bad_input;      /* query or body could not be decoded */
    int body_status;    /* 0, or the status the body already deserves */

    /* Filled in by the routes for the thread that finishes the request;
     * borrowed from query/form unless said otherwise. */
    const char *room, *nick, *id, *text;
    int64_t since;
    char *token; /* owned: a new session's token */
    int job;     /* what the writer thread is to do (enum writer_job) */

    /* Links for the writer's queue and the event loop's lists. */
    struct req *next, *prev;   /* queue, or the room's parked list */
    struct req *tnext, *tprev; /* the loop's timeout list */
    struct room *parked_in;
    int64_t deadline; /* mono_ms() at which a parked request gets a ping */
};

/* Returns the request that c has just read whole (c->in), decoded, for the
 * caller to finish with req_reply() or req_drop(); it takes c along. The
 * caller then resets c->in. */
struct req *req_new(struct conn *c);

/* Borrowed: the named parameter from the form body, else the query string;
 * NULL when absent. */
const char *req_param(const struct req *r, const char *name);

/* Takes r: sends status and the JSON body, frees r, and gives its
 * connection back for the next request (or closes it). */
void req_reply(struct req *r, int status, const char *body, size_t len);

/* Takes r: closes the connection without a reply (the client left). */
void req_drop(struct req *r);

/* The connection's file descriptor, to watch for the client leaving (the
 * web server then closes it). */
int req_fd(const struct req *r);

#endif
