/* request.h -- one FastCGI request: its parameters, decoded query and form,
 * and the reply that ends it.
 *
 * The loop thread makes a struct req; exactly one holder (the routes, the
 * event loop or the writer thread) then replies or drops it, which frees it
 * and passes its connection on. Replies may come from any thread; they are
 * written on the loop thread.
 */
#ifndef PGCHAT_REQUEST_H
#define PGCHAT_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "query.h"
#include "server.h"
#include "wire.h"

enum req_method { REQ_GET = 1, REQ_HEAD = 2, REQ_POST = 4, REQ_OTHER = 8 };

struct req {
    struct conn *conn; /* owned until the reply */
    uint16_t id;       /* the FastCGI request id */
    struct wire_params params;
    enum req_method method;
    const char *path;   /* borrowed from params: the endpoint's name */
    struct query query; /* the query string */
    struct query form;  /* the body of a form POST */
    int bad_input;      /* query or body could not be decoded */
    int body_status;    /* 0, or the status the body already deserves */
    /* Set by a holder that can end the request early, on the loop thread:
     * called there when the client has gone (then r must be dropped). */
    void (*cancel)(struct req *r);
    void *holder; /* the holder's own record of r */
    /* Set on the loop thread when the client has gone: a thread that has
     * not started on r yet need not. */
    _Atomic int gone;
};

/* Returns the request that c has just read whole (in), decoded; it takes c
 * along. */
struct req *req_new(struct conn *c, const struct wire_in *in);

/* Borrowed: the named parameter from the form body, else the query string;
 * NULL when absent. */
const char *req_param(const struct req *r, const char *name);

/* Borrowed: the FastCGI parameter name (HTTP_*, REMOTE_ADDR, ...), or
 * NULL. */
const char *req_env(const struct req *r, const char *name);

/* Take r: send status with the JSON body (req_reply), {"error":message}
 * (req_error) or {"rss":N} (req_ok), free r, and give its connection back
 * for the next request. Safe from any thread. */
void req_reply(struct req *r, int status, const char *body, size_t len);
void req_error(struct req *r, int status, const char *message);
void req_ok(struct req *r);

/* Takes r: as req_error, with a Retry-After of retry_s seconds: for the
 * refusals that waiting cures (a rate, a full queue, a restart). */
void req_error_retry(struct req *r, int status, const char *message,
                     int retry_s);

/* Writes into buf (size bytes) the Set-Cookie line that carries the
 * session token of room for its event stream (EventSource cannot send a
 * header), or clears it when token is NULL. Loop thread. */
void req_session_cookie(const struct req *r, const char *room,
                        const char *token, char *buf, size_t size);

/* Takes r: as req_reply, with more header lines ("Name: value\r\n"
 * each; ours, never from input). */
void req_reply_with(struct req *r, int status, const char *headers,
                    const char *body, size_t len);

/* Takes r: as req_reply_with, with a body of content_type. */
void req_reply_as(struct req *r, int status, const char *content_type,
                  const char *headers, const char *body, size_t len);

/* A reply that goes on, on the loop thread: req_stream_begin() sends the
 * head (200, content_type, not buffered by nginx), req_stream() a part;
 * each returns 0, or -1 when the client has gone or reads too slowly (then
 * drop r). req_stream_end() takes r and ends the reply. */
int req_stream_begin(struct req *r, const char *content_type);
int req_stream(struct req *r, const char *data, size_t len);
void req_stream_end(struct req *r);

/* Takes r: ends it without a reply (its client has gone). Loop thread. */
void req_drop(struct req *r);

/* The reply for a database that cannot be reached. */
#define REQ_DB_DOWN "Database unavailable, try again"

#endif
