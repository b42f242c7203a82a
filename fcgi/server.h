/* server.h -- the worker's FastCGI connections: accepting them, reading
 * requests from them, and keeping them open for the next request.
 */
#ifndef PGCHAT_SERVER_H
#define PGCHAT_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* One connection from the web server. Between requests, and while a
 * request is being read, the server thread owns it; from the moment a whole
 * request is handed on, whoever holds the request (struct req) does, until
 * it calls server_done(). */
struct conn {
    int fd;
    uint16_t id; /* the current request's FastCGI id */
    int keep;    /* keep the connection after the reply */
    struct wire_in in;
    char *buf; /* owned: the start of a record not read whole yet */
    size_t len;
    struct conn *prev, *next; /* the server's list of idle connections */
};

/* Starts the server thread on the listening sockets (write_fd may be -1).
 * Each whole request goes to routes_handle() on that thread. Returns 0 or
 * -1. */
int server_start(int listen_fd, int write_fd);

/* Stops accepting and reading: idle connections are closed at once, the
 * others once their request is answered. Waits for the thread. */
void server_stop(void);

/* FastCGI connections accepted and requests read by this worker so far.
 * Safe from any thread. */
void server_counts(long long *connections, long long *requests);

/* Takes c, whose request was answered (ok: the whole reply was written):
 * keeps it for the next request when the web server asked for that, else
 * closes it. Safe from any thread. */
void server_done(struct conn *c, int ok);

#endif
