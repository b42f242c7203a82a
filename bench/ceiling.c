/* ceiling.c -- the nginx -> FastCGI ceiling for pgchat's benchmark.
 *
 *   ceiling SOCKET [PROCESSES]
 *
 * A FastCGI responder that does nothing: every request gets the same small
 * JSON body, the size of pgchat's /who reply, with no database behind it.
 * It speaks FastCGI through pgchat's own wire layer (fcgi/wire.c) and keeps
 * nginx's connections (fastcgi_keep_conn), exactly as pgchat's server
 * thread does, so that behind the same nginx.conf it tells how many
 * requests a second the path nginx -> kept FastCGI connection allows on
 * this machine. pgchat's figures are given as a fraction of it.
 *
 * PROCESSES (default 1) processes, each one epoll loop, accept on one
 * socket (EPOLLEXCLUSIVE: one is woken per connection). Each reply is one
 * writev. SIGTERM ends it; the children die with the parent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wire.h"

#define CEILING_EVENTS 256
#define CEILING_MAX_BODY (64 * 1024) /* nginx.conf's client_max_body_size */

static const char head[] = "Status: 200 OK\r\n"
                           "Content-Type: application/json; charset=utf-8\r\n"
                           "Content-Length: 25\r\n"
                           "Cache-Control: no-store\r\n"
                           "\r\n";
static const char body[] = "{\"nicks\":[],\"rss\":123456}";

struct conn {
    int fd;
    struct wire_in in;
    char *buf; /* owned: the start of a record not yet whole */
    size_t len;
};

static char rbuf[65536];

static void
conn_free(struct conn *c)
{
    close(c->fd);
    wire_in_reset(&c->in);
    free(c->buf);
    free(c);
}

static int
write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t k = writev(fd, iov, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        while (n > 0 && (size_t)k >= iov->iov_len) {
            k -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= (size_t)k;
        }
    }
    return 0;
}

/* The constant reply to the request just read, in one writev. */
static int
answer(struct conn *c)
{
    unsigned char hdrs[64];
    struct iovec iov[8];
    size_t total = sizeof(head) - 1 + sizeof(body) - 1;
    int n;

    if (wire_reply_hdrs(total) > sizeof(hdrs) ||
        wire_reply_iovs(total) > sizeof(iov) / sizeof(iov[0]))
        return -1;
    n = wire_reply(c->in.busy, head, sizeof(head) - 1, body, sizeof(body) - 1,
                   hdrs, iov);
    if (write_all(c->fd, iov, n) < 0)
        return -1;
    wire_done(&c->in);
    return 0;
}

/* Reads and answers what c has. Returns -1 when c is to be closed. */
static int
on_conn(struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, rbuf, sizeof(rbuf), MSG_DONTWAIT);
        const char *data = rbuf;
        size_t len, used;
        enum wire_status st;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return -1;
        len = (size_t)n;
        if (c->len) {
            c->buf = realloc(c->buf, c->len + len);
            if (!c->buf)
                abort();
            memcpy(c->buf + c->len, rbuf, len);
            data = c->buf;
            len += c->len;
        }
        /* Several requests may be in one read only from a web server that
         * does not wait for replies; nginx never does that, so each read
         * holds at most one. */
        while (len > 0) {
            int keep;

            st = wire_feed(&c->in, data, len, &used);
            if (st == WIRE_ERROR || st == WIRE_ABORT)
                return -1;
            if (c->in.olen) {
                struct iovec v = {c->in.out, c->in.olen};

                if (write_all(c->fd, &v, 1) < 0)
                    return -1;
                c->in.olen = 0;
            }
            if (c->in.close_after)
                return -1;
            data += used;
            len -= used;
            if (st != WIRE_READY)
                break;
            keep = c->in.keep;
            wire_in_next(&c->in);
            if (answer(c) < 0 || !keep)
                return -1;
        }
        if (len > 0) {
            char *rest = malloc(len);

            if (!rest)
                abort();
            memcpy(rest, data, len);
            free(c->buf);
            c->buf = rest;
            c->len = len;
        } else {
            free(c->buf);
            c->buf = NULL;
            c->len = 0;
        }
    }
}

static void
on_listen(int epfd, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN};
        struct conn *c;

        if (fd < 0)
            return;
        c = calloc(1, sizeof(*c));
        if (!c)
            abort();
        c->fd = fd;
        c->in.max_body = CEILING_MAX_BODY;
        ev.data.ptr = c;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            conn_free(c);
    }
}

/* One process: its loop, forever. */
static int
run(int lfd)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE,
                             .data.ptr = NULL};
    struct epoll_event events[CEILING_EVENTS];
    int epfd = epoll_create1(EPOLL_CLOEXEC);

    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0)
        return -1;
    for (;;) {
        int n = epoll_wait(epfd, events, CEILING_EVENTS, -1);

        if (n < 0 && errno != EINTR)
            return -1;
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;

            if (!c)
                on_listen(epfd, lfd);
            else if (on_conn(c) < 0)
                conn_free(c);
        }
    }
}

static int
listen_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -1;
    strcpy(sa.sun_path, path);
    unlink(path); /* a leftover from an earlier run */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 4096) < 0)
        return -1;
    chmod(path, 0666); /* nginx's workers run as another user */
    return fd;
}

int
main(int argc, char **argv)
{
    int procs = argc > 2 ? atoi(argv[2]) : 1;
    int lfd;

    if (argc < 2 || procs < 1) {
        fprintf(stderr, "usage: ceiling SOCKET [PROCESSES]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    lfd = listen_unix(argv[1]);
    if (lfd < 0) {
        fprintf(stderr, "ceiling: cannot listen on %s: %s\n", argv[1],
                strerror(errno));
        return 1;
    }
    if (procs == 1)
        return run(lfd) < 0 ? 1 : 0;
    for (int i = 0; i < procs; i++) {
        pid_t pid = fork();

        if (pid == 0) {
            /* a child must not outlive the parent bench/run stops */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            _exit(run(lfd) < 0 ? 1 : 0);
        }
        if (pid < 0)
            return 1;
    }
    while (wait(NULL) > 0)
        ;
    return 0;
}
