/* server.h -- the worker's FastCGI connections on the event loop: accepting
 * them, reading requests, and writing replies without ever blocking.
 *
 * Everything here runs on the loop thread. A connection carries one request
 * at a time. A whole request is handed up through server_callbacks.request;
 * the connection is then "busy" until server_reply() or server_drop() ends
 * the request, and is watched meanwhile for the web server leaving or
 * aborting it (server_callbacks.abort). A busy connection's memory lives
 * until its request is ended, even when its peer has long gone.
 */
#ifndef PGCHAT_SERVER_H
#define PGCHAT_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "wire.h"

struct conn;

struct server_callbacks {
    /* A whole request was read: in holds its parameters and body until the
     * call returns. The callee ends it now or later. */
    void (*request)(struct conn *c, const struct wire_in *in);
    /* The busy request's web server left, or sent ABORT_REQUEST: nobody
     * reads its answer. The callee should end it (server_drop) if it can;
     * a reply that comes later is thrown away. */
    void (*abort)(struct conn *c);
};

/* Sets the callbacks. Returns 0. */
int server_init(const struct server_callbacks *cb);

/* Takes fd, a new non-blocking connection from the web server. */
void server_adopt(int fd);

/* Ends c's busy request with the reply in iov[0..n) (records made by
 * wire_reply). What cannot be written now is copied and written as the
 * peer reads; a peer that reads nothing for SERVER_SEND_MS is dropped. */
void server_reply(struct conn *c, const struct iovec *iov, int n);

/* Sends a part of c's busy request's reply (records made by wire_stdout),
 * which goes on. Returns 0, or -1 when the connection broke or more than
 * 1 MB waits unread: the caller then drops the request. */
int server_send(struct conn *c, const struct iovec *iov, int n);

/* Ends c's busy request without a reply: an aborted request gets its
 * END_REQUEST, any other closes the connection. */
void server_drop(struct conn *c);

/* The busy request's owner, set by whoever handles it. */
void server_set_owner(struct conn *c, void *owner);
void *server_owner(const struct conn *c);

/* Closes the idle connections; from now on every connection closes once
 * its request is answered. */
void server_stop(void);

/* Connections with a request or a reply not finished yet. */
size_t server_busy(void);

/* The next mono_ms() at which server_tick() has work, and that work:
 * timeouts, and freeing what was closed. */
int64_t server_due(void);
void server_tick(int64_t now);

#endif
