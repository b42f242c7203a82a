/* server.c -- the worker's FastCGI connections: one thread and one epoll
 * instance that accept them, read requests from them, and watch them
 * between requests.
 *
 * nginx keeps its connections to the responder (fastcgi_keep_conn and
 * keepalive in nginx.conf), so a connection carries request after request,
 * one at a time. Each is registered here with EPOLLONESHOT: the thread
 * reads a request only while it owns the connection, and once a whole
 * request has come it hands the connection on with it and is not woken for
 * it again until server_done() gives it back. A parked /recv therefore costs
 * this thread nothing; the event loop watches it for a hang-up instead.
 *
 * Nothing on this thread waits on the database: routes_handle() checks a
 * request and queues it for the writer or the event loop, so one thread
 * keeps up with nginx.
 */
#define _GNU_SOURCE
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "request.h"
#include "routes.h"
#include "util.h"

#define SERVER_EVENTS 256
/* A reply is written whole, blocking, by whichever thread answers (for a
 * fan-out the event loop); a web server that stops reading for this long
 * loses the connection instead of stalling that thread. */
#define SERVER_SEND_TIMEOUT_S 10
/* A whole record (header, 65535 bytes of content, padding) fits. */
#define SERVER_READ (8 + 65535 + 255)

static struct {
    int epfd, evfd;
    int listen[2];
    pthread_t thread;
    pthread_mutex_t mu; /* guards idle and stopping */
    struct conn *idle;  /* connections armed in epfd, owned here */
    int stopping;
    const char *allowed; /* FCGI_WEB_SERVER_ADDRS, or NULL */
    _Atomic long long connections, requests; /* for /stats */
    char rbuf[SERVER_READ];                  /* the thread's read buffer */
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .epfd = -1, .evfd = -1};

static char tag_stop; /* the eventfd's epoll tag */

static void
conn_close(struct conn *c)
{
    close(c->fd);
    wire_in_reset(&c->in);
    free(c->buf);
    free(c);
}

/* Call with S.mu held. */
static void
idle_add(struct conn *c)
{
    c->prev = NULL;
    c->next = S.idle;
    if (S.idle)
        S.idle->prev = c;
    S.idle = c;
}

static void
idle_remove(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        S.idle = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Gives c back to this thread, to be woken when it has input. Returns 0,
 * or -1 when c was closed instead (the worker is stopping). */
static int
arm(struct conn *c, int op)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT,
                             .data.ptr = c};

    pthread_mutex_lock(&S.mu);
    if (S.stopping || epoll_ctl(S.epfd, op, c->fd, &ev) < 0) {
        pthread_mutex_unlock(&S.mu);
        conn_close(c);
        return -1;
    }
    idle_add(c);
    pthread_mutex_unlock(&S.mu);
    return 0;
}

void
server_done(struct conn *c, int ok)
{
    /* Bytes after a request's end mean a web server that does not wait
     * for the reply: nothing to keep a connection for. */
    if (!ok || !c->keep || c->len) {
        conn_close(c);
        return;
    }
    wire_done(&c->in);
    arm(c, EPOLL_CTL_MOD);
}

/* libfcgi's FCGI_WEB_SERVER_ADDRS: with it set, TCP connections are taken
 * only from the listed addresses (comma-separated). */
static int
allowed(int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    char addr[INET6_ADDRSTRLEN];
    const char *p;
    size_t n;

    if (!S.allowed || getpeername(fd, (struct sockaddr *)&sa, &len) < 0)
        return 1;
    if (sa.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, addr,
                  sizeof(addr));
    else if (sa.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, addr,
                  sizeof(addr));
    else
        return 1; /* a unix socket: the file's permissions decide */
    n = strlen(addr);
    for (p = S.allowed; *p; p += strcspn(p, ",")) {
        p += strspn(p, ", ");
        if (strncmp(p, addr, n) == 0 &&
            (p[n] == ',' || p[n] == ' ' || p[n] == '\0'))
            return 1;
    }
    log_warn("refused a FastCGI connection from %s (FCGI_WEB_SERVER_ADDRS)",
             addr);
    return 0;
}

static void
on_listen(int lfd)
{
    static int64_t last_warning = INT64_MIN / 2;
    struct timeval send_timeout = {SERVER_SEND_TIMEOUT_S, 0};
    struct timespec pause = {0, 10 * 1000 * 1000};

    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        struct conn *c;

        if (fd < 0) {
            /* EAGAIN: another worker took it, or the backlog is empty. */
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                return;
            /* Out of descriptors or memory: the socket stays readable, so
             * a pause keeps this thread from spinning on it until replies
             * close some; the warning comes once a second at the most. */
            if (mono_ms() - last_warning >= 1000) {
                log_warn("cannot accept: %s", strerror(errno));
                last_warning = mono_ms();
            }
            nanosleep(&pause, NULL);
            return;
        }
        if (!allowed(fd) ||
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout,
                       sizeof(send_timeout)) < 0) {
            close(fd);
            continue;
        }
        S.connections++;
        c = xcalloc(1, sizeof(*c));
        c->fd = fd;
        c->in.max_body = REQ_MAX_BODY;
        arm(c, EPOLL_CTL_ADD);
    }
}

/* Answers management records (request id 0) at once. Returns 0 or -1. */
static int
send_mgmt(struct conn *c)
{
    size_t off = 0;

    while (off < c->in.olen) {
        ssize_t n = write(c->fd, c->in.out + off, c->in.olen - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    c->in.olen = 0;
    return 0;
}

/* Reads what c has. Returns 1 when a whole request was handed on (c with
 * it), 0 when c waits for more, -1 when c is to be closed. */
static int
read_request(struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, S.rbuf, sizeof(S.rbuf), MSG_DONTWAIT);
        const char *data = S.rbuf;
        size_t len, used;
        enum wire_status st;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return -1; /* the web server closed it, or it broke */
        len = (size_t)n;
        if (c->len) {
            /* The rest of a record begun in an earlier read. */
            c->buf = xrealloc(c->buf, c->len + len);
            memcpy(c->buf + c->len, S.rbuf, len);
            data = c->buf;
            len += c->len;
        }
        st = wire_feed(&c->in, data, len, &used);
        if (st == WIRE_ERROR || st == WIRE_ABORT ||
            (c->in.olen && send_mgmt(c) < 0) || c->in.close_after)
            return -1;
        if (used < len) {
            /* Kept: part of a record, or bytes after a whole request. */
            char *rest = xmalloc(len - used);

            memcpy(rest, data + used, len - used);
            free(c->buf);
            c->buf = rest;
            c->len = len - used;
        } else {
            free(c->buf);
            c->buf = NULL;
            c->len = 0;
        }
        if (st == WIRE_READY) {
            struct req *r;

            S.requests++;
            c->id = c->in.id;
            c->keep = c->in.keep;
            r = req_new(c);
            wire_in_next(&c->in);
            routes_handle(r);
            return 1;
        }
    }
}

static void
on_conn(struct conn *c)
{
    int rc;

    pthread_mutex_lock(&S.mu);
    idle_remove(c);
    pthread_mutex_unlock(&S.mu);
    rc = read_request(c);
    if (rc < 0)
        conn_close(c);
    else if (rc == 0)
        arm(c, EPOLL_CTL_MOD);
}

static void *
server_main(void *arg)
{
    struct epoll_event events[SERVER_EVENTS];
    int stop = 0;

    (void)arg;
    while (!stop) {
        int n = epoll_wait(S.epfd, events, SERVER_EVENTS, -1);

        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait failed: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;

            if (tag == &tag_stop)
                stop = 1;
            else if (tag == &S.listen[0] || tag == &S.listen[1])
                on_listen(*(int *)tag);
            else
                on_conn(tag);
        }
    }
    /* Idle connections close now, so that nginx sends its next requests
     * to the other workers; the rest close once answered (arm()). Only
     * here, after the last batch: an event in a batch may name any
     * connection that was idle when the batch was taken. */
    pthread_mutex_lock(&S.mu);
    S.stopping = 1;
    while (S.idle) {
        struct conn *c = S.idle;

        idle_remove(c);
        conn_close(c);
    }
    pthread_mutex_unlock(&S.mu);
    return NULL;
}

void
server_counts(long long *connections, long long *requests)
{
    *connections = S.connections;
    *requests = S.requests;
}

int
server_start(int listen_fd, int write_fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_stop};
    const char *addrs = getenv("FCGI_WEB_SERVER_ADDRS");

    S.allowed = addrs && *addrs ? addrs : NULL;
    S.listen[0] = listen_fd;
    S.listen[1] = write_fd;
    S.epfd = epoll_create1(EPOLL_CLOEXEC);
    S.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (S.epfd < 0 || S.evfd < 0 ||
        epoll_ctl(S.epfd, EPOLL_CTL_ADD, S.evfd, &ev) < 0) {
        log_error("cannot set up the server: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        int fd = S.listen[i];

        if (fd < 0)
            continue;
        /* Every worker waits on the same sockets: EPOLLEXCLUSIVE wakes one
         * of them per connection, not all. The socket is non-blocking for
         * all of them, which is what they all want. */
        ev = (struct epoll_event){.events = EPOLLIN | EPOLLEXCLUSIVE,
                                  .data.ptr = &S.listen[i]};
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
            epoll_ctl(S.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            log_error("cannot watch the listening socket: %s", strerror(errno));
            return -1;
        }
    }
    if (pthread_create(&S.thread, NULL, server_main, NULL) != 0) {
        log_error("cannot start the server thread: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void
server_stop(void)
{
    uint64_t one = 1;

    if (write(S.evfd, &one, sizeof(one)) < 0)
        log_error("cannot stop the server thread: %s", strerror(errno));
    pthread_join(S.thread, NULL);
}
